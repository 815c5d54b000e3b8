//! The small control payloads: acknowledge, size, handshake complete, encryption challenge,
//! channel_closed, OpenDataChannelInput, flag and exit code.

use core::fmt;

use super::json::{self, emit_with, JsonStr, Members, Value};
use super::Error;
use crate::uuid::Uuid;
use crate::wire::MessageType;

/// Reads the members of a JSON object document into one slot per key (matched ignoring ASCII
/// case, like Go's `encoding/json`; `null` reads as absent). A known key twice is
/// [`Error::DuplicateField`]: Go keeps the last, other readers the first, so an answer with both
/// is refused rather than read one way here and another elsewhere. Unknown keys are skipped (but
/// still validated).
/// The second array holds each value's raw JSON text (empty when absent).
pub(crate) fn fields<'a, const N: usize>(
    object: &'a str,
    keys: [&'static str; N],
) -> Result<Fields<'a, N>, Error> {
    let mut out = [None; N];
    let mut raws = [""; N];
    let mut seen = [false; N];
    for m in Members::new(object) {
        let (k, v, raw) = m?;
        if let Some(slot) = keys.iter().position(|key| k.eq_ignore_ascii_case(key)) {
            if core::mem::replace(&mut seen[slot], true) {
                return Err(Error::DuplicateField(keys[slot]));
            }
            (out[slot], raws[slot]) = match v {
                Value::Null => (None, ""),
                v => (Some(v), raw),
            };
        }
    }
    Ok((out, raws))
}

/// Values by key, and their raw JSON text.
pub(crate) type Fields<'a, const N: usize> = ([Option<Value<'a>>; N], [&'a str; N]);

/// [`fields`] on a whole payload, which must be one JSON object.
pub(crate) fn document_fields<'a, const N: usize>(
    input: &'a [u8],
    keys: [&'static str; N],
) -> Result<[Option<Value<'a>>; N], Error> {
    Ok(fields(json::document(input)?, keys)?.0)
}

pub(crate) fn required<'a>(v: Option<Value<'a>>, key: &'static str) -> Result<Value<'a>, Error> {
    v.ok_or(Error::MissingField(key))
}

pub(crate) fn opt_str<'a>(v: Option<Value<'a>>, key: &'static str) -> Result<JsonStr<'a>, Error> {
    v.map_or(Ok(JsonStr::EMPTY), |v| v.str(key))
}

fn u32_field(v: Value<'_>, key: &'static str) -> Result<u32, Error> {
    u32::try_from(v.i64(key)?).map_err(|_| Error::BadNumber(key))
}

/// Acknowledges one stream data message (PROTOCOL.md §3); sent as message type `acknowledge`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Acknowledge {
    /// `AcknowledgedMessageType`: the acknowledged message's type.
    pub message_type: MessageType,
    /// `AcknowledgedMessageId`, in the normal hyphenated form (not the header's swapped halves).
    pub message_id: Uuid,
    /// `AcknowledgedMessageSequenceNumber`.
    pub sequence_number: i64,
    /// `IsSequentialMessage`; the official client sends `true`. Absent reads as `false`, Go's
    /// zero value.
    pub is_sequential: bool,
}

impl Acknowledge {
    /// Parses an acknowledge payload.
    ///
    /// # Errors
    /// Malformed JSON, or a missing or malformed type, id or sequence number.
    pub fn parse(input: &[u8]) -> Result<Self, Error> {
        const T: &str = "AcknowledgedMessageType";
        const I: &str = "AcknowledgedMessageId";
        const S: &str = "AcknowledgedMessageSequenceNumber";
        const Q: &str = "IsSequentialMessage";
        let [t, i, s, q] = document_fields(input, [T, I, S, Q])?;
        let (tb, tn) = required(t, T)?
            .str(T)?
            .to_array::<32>()
            .map_err(|_| Error::BadValue(T))?;
        let message_type = MessageType::from_name(&tb[..tn]).map_err(|_| Error::BadValue(T))?;
        let (ib, inn) = required(i, I)?
            .str(I)?
            .to_array::<36>()
            .map_err(|_| Error::BadValue(I))?;
        let message_id = Uuid::parse_hyphenated(&ib[..inn]).map_err(|_| Error::BadValue(I))?;
        Ok(Acknowledge {
            message_type,
            message_id,
            sequence_number: required(s, S)?.i64(S)?,
            is_sequential: q.map_or(Ok(false), |q| q.bool(Q))?,
        })
    }

    /// Writes the payload in the official client's key order.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`].
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, Error> {
        let id = self.message_id.to_hyphenated();
        emit_with(buf, |w| {
            w.raw(b"{\"AcknowledgedMessageType\":\"");
            w.escaped(self.message_type.as_str());
            w.raw(b"\",\"AcknowledgedMessageId\":\"");
            w.raw(&id);
            w.raw(b"\",\"AcknowledgedMessageSequenceNumber\":");
            w.i64(self.sequence_number);
            w.raw(b",\"IsSequentialMessage\":");
            w.bool(self.is_sequential);
            w.raw(b"}");
        })
    }
}

/// Terminal size (client → agent, payload type 3): `{"cols":120,"rows":40}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Size {
    /// Columns.
    pub cols: u32,
    /// Rows.
    pub rows: u32,
}

impl Size {
    /// Parses a size payload. Both keys are required.
    ///
    /// # Errors
    /// Malformed JSON, a missing key, or a value that is not a u32.
    pub fn parse(input: &[u8]) -> Result<Self, Error> {
        let [c, r] = document_fields(input, ["cols", "rows"])?;
        Ok(Size {
            cols: u32_field(required(c, "cols")?, "cols")?,
            rows: u32_field(required(r, "rows")?, "rows")?,
        })
    }

    /// Writes the payload.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`].
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, Error> {
        emit_with(buf, |w| {
            w.raw(b"{\"cols\":");
            w.i64(self.cols.into());
            w.raw(b",\"rows\":");
            w.i64(self.rows.into());
            w.raw(b"}");
        })
    }
}

/// The end of the handshake (agent → client, payload type 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct HandshakeComplete<'a> {
    /// `HandshakeTimeToComplete`, nanoseconds (a Go `time.Duration`); absent reads as 0.
    pub time_to_complete_ns: i64,
    /// `CustomerMessage`: shown to the user when not empty; absent reads as empty.
    pub customer_message: JsonStr<'a>,
}

impl<'a> HandshakeComplete<'a> {
    /// Parses a handshake complete payload.
    ///
    /// # Errors
    /// Malformed JSON or a field of the wrong type.
    pub fn parse(input: &'a [u8]) -> Result<Self, Error> {
        const T: &str = "HandshakeTimeToComplete";
        const M: &str = "CustomerMessage";
        let [t, m] = document_fields(input, [T, M])?;
        Ok(HandshakeComplete {
            time_to_complete_ns: t.map_or(Ok(0), |t| t.i64(T))?,
            customer_message: opt_str(m, M)?,
        })
    }

    /// Writes the payload.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`].
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, Error> {
        emit_with(buf, |w| {
            w.raw(b"{\"HandshakeTimeToComplete\":");
            w.i64(self.time_to_complete_ns);
            w.raw(b",\"CustomerMessage\":");
            self.customer_message.write(w);
            w.raw(b"}");
        })
    }
}

/// The KMS encryption challenge (payload types 8 and 9): `{"Challenge":"<base64>"}`. The agent
/// sends it encrypted; the client decrypts, re-encrypts and returns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct EncChallenge<'a> {
    /// `Challenge`, base64 text (not decoded here).
    pub challenge: JsonStr<'a>,
}

/// EncChallengeRequest (agent → client, payload type 8).
pub type EncChallengeRequest<'a> = EncChallenge<'a>;
/// EncChallengeResponse (client → agent, payload type 9).
pub type EncChallengeResponse<'a> = EncChallenge<'a>;

impl<'a> EncChallenge<'a> {
    /// Parses a challenge payload.
    ///
    /// # Errors
    /// Malformed JSON or a missing or non-string `Challenge`.
    pub fn parse(input: &'a [u8]) -> Result<Self, Error> {
        const C: &str = "Challenge";
        let [c] = document_fields(input, [C])?;
        Ok(EncChallenge {
            challenge: required(c, C)?.str(C)?,
        })
    }

    /// Writes the payload.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`].
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, Error> {
        emit_with(buf, |w| {
            w.raw(b"{\"Challenge\":");
            self.challenge.write(w);
            w.raw(b"}");
        })
    }
}

/// The payload of a `channel_closed` message: the session ends. Every field is optional (absent
/// reads as empty or 0) so that a close is never lost to a missing key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ChannelClosed<'a> {
    /// `MessageId`.
    pub message_id: JsonStr<'a>,
    /// `CreatedDate` (the agent sends a timestamp string).
    pub created_date: JsonStr<'a>,
    /// `DestinationId`.
    pub destination_id: JsonStr<'a>,
    /// `SessionId`.
    pub session_id: JsonStr<'a>,
    /// `MessageType` (`channel_closed`).
    pub message_type: JsonStr<'a>,
    /// `SchemaVersion`.
    pub schema_version: i64,
    /// `Output`: the reason to show the user.
    pub output: JsonStr<'a>,
}

impl<'a> ChannelClosed<'a> {
    /// Parses a channel_closed payload.
    ///
    /// # Errors
    /// Malformed JSON or a field of the wrong type.
    pub fn parse(input: &'a [u8]) -> Result<Self, Error> {
        const KEYS: [&str; 7] = [
            "MessageId",
            "CreatedDate",
            "DestinationId",
            "SessionId",
            "MessageType",
            "SchemaVersion",
            "Output",
        ];
        let [id, date, dest, sid, mt, sv, out] = document_fields(input, KEYS)?;
        Ok(ChannelClosed {
            message_id: opt_str(id, KEYS[0])?,
            created_date: opt_str(date, KEYS[1])?,
            destination_id: opt_str(dest, KEYS[2])?,
            session_id: opt_str(sid, KEYS[3])?,
            message_type: opt_str(mt, KEYS[4])?,
            schema_version: sv.map_or(Ok(0), |v| v.i64(KEYS[5]))?,
            output: opt_str(out, KEYS[6])?,
        })
    }

    /// Writes the payload.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`].
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, Error> {
        emit_with(buf, |w| {
            w.raw(b"{");
            w.key(true, "MessageId");
            self.message_id.write(w);
            w.key(false, "CreatedDate");
            self.created_date.write(w);
            w.key(false, "DestinationId");
            self.destination_id.write(w);
            w.key(false, "SessionId");
            self.session_id.write(w);
            w.key(false, "MessageType");
            self.message_type.write(w);
            w.key(false, "SchemaVersion");
            w.i64(self.schema_version);
            w.key(false, "Output");
            self.output.write(w);
            w.raw(b"}");
        })
    }
}

/// The first message on the WebSocket (a text frame), client → agent.
///
/// `Debug` (and `defmt`) never show the token.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct OpenDataChannelInput<'a> {
    /// `MessageSchemaVersion` (`"1.0"`).
    pub message_schema_version: JsonStr<'a>,
    /// `RequestId`: a fresh UUID, hyphenated.
    pub request_id: JsonStr<'a>,
    /// `TokenValue`: the secret from StartSession. Never log it.
    pub token_value: JsonStr<'a>,
    /// `ClientId`: a UUID, hyphenated.
    pub client_id: JsonStr<'a>,
    /// `ClientVersion`: the agent gates features on it (PROTOCOL.md §1).
    pub client_version: JsonStr<'a>,
}

impl<'a> OpenDataChannelInput<'a> {
    /// The schema version the official client sends.
    pub const SCHEMA_VERSION: &'static str = "1.0";

    /// Parses the message. `TokenValue` is required; the other keys read as empty when absent.
    ///
    /// # Errors
    /// Malformed JSON, a missing `TokenValue`, or a field of the wrong type. Errors never carry
    /// the token.
    pub fn parse(input: &'a [u8]) -> Result<Self, Error> {
        const KEYS: [&str; 5] = [
            "MessageSchemaVersion",
            "RequestId",
            "TokenValue",
            "ClientId",
            "ClientVersion",
        ];
        let [sv, rid, tok, cid, cv] = document_fields(input, KEYS)?;
        Ok(OpenDataChannelInput {
            message_schema_version: opt_str(sv, KEYS[0])?,
            request_id: opt_str(rid, KEYS[1])?,
            token_value: required(tok, KEYS[2])?.str(KEYS[2])?,
            client_id: opt_str(cid, KEYS[3])?,
            client_version: opt_str(cv, KEYS[4])?,
        })
    }

    /// Writes the message in the official client's key order.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`].
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, Error> {
        emit_with(buf, |w| {
            w.raw(b"{");
            w.key(true, "MessageSchemaVersion");
            self.message_schema_version.write(w);
            w.key(false, "RequestId");
            self.request_id.write(w);
            w.key(false, "TokenValue");
            self.token_value.write(w);
            w.key(false, "ClientId");
            self.client_id.write(w);
            w.key(false, "ClientVersion");
            self.client_version.write(w);
            w.raw(b"}");
        })
    }
}

impl fmt::Debug for OpenDataChannelInput<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenDataChannelInput")
            .field("message_schema_version", &self.message_schema_version)
            .field("request_id", &self.request_id)
            .field("token_value", &"<redacted>")
            .field("client_id", &self.client_id)
            .field("client_version", &self.client_version)
            .finish()
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for OpenDataChannelInput<'_> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(
            f,
            "OpenDataChannelInput {{ request_id: {}, token_value: <redacted>, client_id: {}, client_version: {} }}",
            self.request_id,
            self.client_id,
            self.client_version
        );
    }
}

/// A Flag payload (client → agent, payload type 10): a 4-byte big-endian u32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Flag {
    /// 1: the local port connection closed (basic port forwarding).
    DisconnectToPort,
    /// 2: end the session (agent ≥ 2.3.722.0).
    TerminateSession,
    /// 3: the local side could not connect.
    ConnectToPortError,
    /// Any other value, preserved.
    Unknown(u32),
}

impl From<u32> for Flag {
    fn from(v: u32) -> Self {
        match v {
            1 => Flag::DisconnectToPort,
            2 => Flag::TerminateSession,
            3 => Flag::ConnectToPortError,
            v => Flag::Unknown(v),
        }
    }
}

impl From<Flag> for u32 {
    fn from(f: Flag) -> u32 {
        match f {
            Flag::DisconnectToPort => 1,
            Flag::TerminateSession => 2,
            Flag::ConnectToPortError => 3,
            Flag::Unknown(v) => v,
        }
    }
}

impl Flag {
    /// The payload length.
    pub const LEN: usize = 4;

    /// Parses a flag payload.
    ///
    /// # Errors
    /// [`Error::BadFlagLength`] unless the input is exactly 4 bytes.
    pub fn parse(input: &[u8]) -> Result<Self, Error> {
        let b: [u8; 4] = input.try_into().map_err(|_| Error::BadFlagLength)?;
        Ok(Flag::from(u32::from_be_bytes(b)))
    }

    /// Writes the 4 bytes.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`].
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, Error> {
        let dst = buf.get_mut(..Self::LEN).ok_or(Error::BufferTooSmall {
            required: Self::LEN,
        })?;
        dst.copy_from_slice(&u32::from(*self).to_be_bytes());
        Ok(Self::LEN)
    }
}

/// An ExitCode payload (agent → client, payload type 12): the ASCII text `EXIT_CODE: <n>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ExitCode(pub i32);

impl ExitCode {
    const PREFIX: &'static [u8] = b"EXIT_CODE:";

    /// Parses `EXIT_CODE: <n>`: spaces after the colon are optional, trailing whitespace
    /// (a newline) is allowed, `n` may be negative and must fit an i32.
    ///
    /// # Errors
    /// [`Error::BadExitCode`] for anything else.
    pub fn parse(input: &[u8]) -> Result<Self, Error> {
        let rest = input.strip_prefix(Self::PREFIX).ok_or(Error::BadExitCode)?;
        let text = core::str::from_utf8(rest).map_err(|_| Error::BadExitCode)?;
        let n = text.trim_start_matches([' ', '\t']).trim_end();
        json::parse_i64(n)
            .and_then(|v| i32::try_from(v).ok())
            .map(ExitCode)
            .ok_or(Error::BadExitCode)
    }

    /// Writes `EXIT_CODE: <n>`.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`].
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, Error> {
        emit_with(buf, |w| {
            w.raw(Self::PREFIX);
            w.raw(b" ");
            w.i64(self.0.into());
        })
    }
}
