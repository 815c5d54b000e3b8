//! MessageType and PayloadType: known values plus preserved unknown ones.

use core::fmt;

use super::{Error, MESSAGE_TYPE_LEN};

/// A MessageType this crate does not know, kept verbatim (trimmed) so it can be re-emitted.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct UnknownMessageType {
    bytes: [u8; MESSAGE_TYPE_LEN],
    len: u8,
}

impl UnknownMessageType {
    /// The text, printable ASCII.
    pub fn as_str(&self) -> &str {
        // Constructed only from printable ASCII.
        core::str::from_utf8(&self.bytes[..self.len as usize]).unwrap_or("")
    }
}

impl fmt::Debug for UnknownMessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for UnknownMessageType {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "{=str}", self.as_str());
    }
}

/// The MessageType header field (PROTOCOL.md §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum MessageType {
    /// `input_stream_data`: client → agent data.
    InputStreamData,
    /// `output_stream_data`: agent → client data.
    OutputStreamData,
    /// `acknowledge`.
    Acknowledge,
    /// `channel_closed`: the session ends.
    ChannelClosed,
    /// `start_publication`: the peer may send again.
    StartPublication,
    /// `pause_publication`: the peer asks us to stop sending data.
    PausePublication,
    /// Anything else, preserved.
    Unknown(UnknownMessageType),
}

impl MessageType {
    /// Parses the text form; unknown printable-ASCII names become [`MessageType::Unknown`].
    ///
    /// # Errors
    /// [`Error::BadMessageType`] if empty, longer than 32 bytes, or not printable ASCII.
    pub fn from_name(s: &[u8]) -> Result<Self, Error> {
        Ok(match s {
            b"input_stream_data" => MessageType::InputStreamData,
            b"output_stream_data" => MessageType::OutputStreamData,
            b"acknowledge" => MessageType::Acknowledge,
            b"channel_closed" => MessageType::ChannelClosed,
            b"start_publication" => MessageType::StartPublication,
            b"pause_publication" => MessageType::PausePublication,
            _ => {
                if s.is_empty()
                    || s.len() > MESSAGE_TYPE_LEN
                    || !s.iter().all(|c| c.is_ascii_graphic() || *c == b' ')
                {
                    return Err(Error::BadMessageType);
                }
                let mut bytes = [0u8; MESSAGE_TYPE_LEN];
                bytes[..s.len()].copy_from_slice(s);
                MessageType::Unknown(UnknownMessageType {
                    bytes,
                    len: s.len() as u8,
                })
            }
        })
    }

    /// Parses the padded 32-byte header field: trims spaces and NULs at both ends first.
    ///
    /// # Errors
    /// As [`MessageType::from_name`].
    pub fn from_field(raw: &[u8]) -> Result<Self, Error> {
        let pad = |c: &u8| *c == b' ' || *c == 0;
        let start = raw.iter().position(|c| !pad(c)).unwrap_or(raw.len());
        let end = raw.iter().rposition(|c| !pad(c)).map_or(start, |e| e + 1);
        Self::from_name(&raw[start..end])
    }

    /// The text form.
    pub fn as_str(&self) -> &str {
        match self {
            MessageType::InputStreamData => "input_stream_data",
            MessageType::OutputStreamData => "output_stream_data",
            MessageType::Acknowledge => "acknowledge",
            MessageType::ChannelClosed => "channel_closed",
            MessageType::StartPublication => "start_publication",
            MessageType::PausePublication => "pause_publication",
            MessageType::Unknown(u) => u.as_str(),
        }
    }

    /// The text form as bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.as_str().as_bytes()
    }

    /// Whether this is a sequenced stream message (`input_stream_data` or `output_stream_data`)
    /// that must be acknowledged.
    pub fn is_stream_data(&self) -> bool {
        matches!(
            self,
            MessageType::InputStreamData | MessageType::OutputStreamData
        )
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The PayloadType header field (PROTOCOL.md §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum PayloadType {
    /// 0: no type (acknowledge and publication frames).
    Null,
    /// 1: stream data (stdout, or stdin from the client).
    Output,
    /// 2: Error.
    Error,
    /// 3: terminal size JSON.
    Size,
    /// 4: Parameter.
    Parameter,
    /// 5: HandshakeRequest JSON.
    HandshakeRequest,
    /// 6: HandshakeResponse JSON.
    HandshakeResponse,
    /// 7: HandshakeComplete JSON.
    HandshakeComplete,
    /// 8: EncChallengeRequest.
    EncChallengeRequest,
    /// 9: EncChallengeResponse.
    EncChallengeResponse,
    /// 10: Flag (4-byte big-endian u32).
    Flag,
    /// 11: stderr data.
    StdErr,
    /// 12: ExitCode (`EXIT_CODE: <n>`).
    ExitCode,
    /// Anything else, preserved.
    Unknown(u32),
}

impl From<u32> for PayloadType {
    fn from(v: u32) -> Self {
        match v {
            0 => PayloadType::Null,
            1 => PayloadType::Output,
            2 => PayloadType::Error,
            3 => PayloadType::Size,
            4 => PayloadType::Parameter,
            5 => PayloadType::HandshakeRequest,
            6 => PayloadType::HandshakeResponse,
            7 => PayloadType::HandshakeComplete,
            8 => PayloadType::EncChallengeRequest,
            9 => PayloadType::EncChallengeResponse,
            10 => PayloadType::Flag,
            11 => PayloadType::StdErr,
            12 => PayloadType::ExitCode,
            other => PayloadType::Unknown(other),
        }
    }
}

impl From<PayloadType> for u32 {
    fn from(t: PayloadType) -> u32 {
        match t {
            PayloadType::Null => 0,
            PayloadType::Output => 1,
            PayloadType::Error => 2,
            PayloadType::Size => 3,
            PayloadType::Parameter => 4,
            PayloadType::HandshakeRequest => 5,
            PayloadType::HandshakeResponse => 6,
            PayloadType::HandshakeComplete => 7,
            PayloadType::EncChallengeRequest => 8,
            PayloadType::EncChallengeResponse => 9,
            PayloadType::Flag => 10,
            PayloadType::StdErr => 11,
            PayloadType::ExitCode => 12,
            PayloadType::Unknown(v) => v,
        }
    }
}
