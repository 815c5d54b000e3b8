//! The handshake: HandshakeRequest (agent → client, payload type 5) and HandshakeResponse
//! (client → agent, type 6). HandshakeComplete lives with the small payloads.

use core::fmt;

use super::control::{document_fields, fields, opt_str, required};
use super::json::{self, check_raw_value, emit_with, Elements, JsonStr, Value, Writer};
use super::Error;

/// The kind of session the agent runs (the `SessionType` action, PROTOCOL.md §3, §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum SessionType {
    /// `Standard_Stream`: an interactive shell.
    StandardStream,
    /// `Port`: port forwarding (Properties: [`super::PortProperties`]).
    Port,
    /// `InteractiveCommands`: a document's command in a PTY.
    InteractiveCommands,
    /// `NonInteractiveCommands`: a command without PTY (Properties: [`super::CommandProperties`]).
    NonInteractiveCommands,
    /// Any other name (emitted as `Unknown`).
    Unknown,
}

impl SessionType {
    /// The wire name.
    pub const fn as_str(&self) -> &'static str {
        match self {
            SessionType::StandardStream => "Standard_Stream",
            SessionType::Port => "Port",
            SessionType::InteractiveCommands => "InteractiveCommands",
            SessionType::NonInteractiveCommands => "NonInteractiveCommands",
            SessionType::Unknown => "Unknown",
        }
    }

    /// Reads a wire name (exact match); other names are [`SessionType::Unknown`].
    pub fn from_name(name: &JsonStr<'_>) -> Self {
        [
            SessionType::StandardStream,
            SessionType::Port,
            SessionType::InteractiveCommands,
            SessionType::NonInteractiveCommands,
        ]
        .into_iter()
        .find(|t| name.eq_str(t.as_str()))
        .unwrap_or(SessionType::Unknown)
    }
}

impl fmt::Display for SessionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An action's `ActionType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ActionType<'a> {
    /// `SessionType`.
    SessionType,
    /// `KMSEncryption`.
    KmsEncryption,
    /// Any other, preserved.
    Other(JsonStr<'a>),
}

impl<'a> ActionType<'a> {
    const SESSION_TYPE: &'static str = "SessionType";
    const KMS: &'static str = "KMSEncryption";

    fn from_name(name: JsonStr<'a>) -> Self {
        if name.eq_str(Self::SESSION_TYPE) {
            ActionType::SessionType
        } else if name.eq_str(Self::KMS) {
            ActionType::KmsEncryption
        } else {
            ActionType::Other(name)
        }
    }

    fn write(&self, w: &mut Writer<'_>) {
        match self {
            ActionType::SessionType => JsonStr::new(Self::SESSION_TYPE).write(w),
            ActionType::KmsEncryption => JsonStr::new(Self::KMS).write(w),
            ActionType::Other(s) => s.write(w),
        }
    }
}

/// One of the agent's `RequestedClientActions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Action<'a> {
    /// `SessionType`: which session the agent runs, and its Properties.
    SessionType {
        /// `ActionParameters.SessionType`.
        session_type: SessionType,
        /// `ActionParameters.Properties`, the raw JSON text of the value (normally an object),
        /// `None` when absent or `null`. Parse it with [`super::PortProperties`] or
        /// [`super::CommandProperties`].
        properties: Option<&'a str>,
    },
    /// `KMSEncryption`: the session's payloads are to be encrypted with a KMS data key.
    KmsEncryption {
        /// `ActionParameters.KMSKeyId`.
        kms_key_id: JsonStr<'a>,
        /// `ActionParameters.Challenge`: base64 of 16 random bytes (agents before 3.3 send
        /// none). A client that acknowledges it adds it to the data key's encryption context
        /// (PROTOCOL.md §6; [`crate::kms`]).
        challenge: Option<JsonStr<'a>>,
    },
    /// An action this crate does not know, preserved (answer it as unsupported).
    Other {
        /// `ActionType`.
        action_type: JsonStr<'a>,
        /// `ActionParameters`, raw JSON text; `None` when absent or `null`.
        parameters: Option<&'a str>,
    },
}

fn raw_opt(raw: &str) -> Option<&str> {
    (!raw.is_empty()).then_some(raw)
}

impl<'a> Action<'a> {
    /// The action's type.
    pub fn action_type(&self) -> ActionType<'a> {
        match self {
            Action::SessionType { .. } => ActionType::SessionType,
            Action::KmsEncryption { .. } => ActionType::KmsEncryption,
            Action::Other { action_type, .. } => ActionType::Other(*action_type),
        }
    }

    fn from_value(v: Value<'a>) -> Result<Self, Error> {
        const T: &str = "ActionType";
        const P: &str = "ActionParameters";
        let ([t, p], [_, p_raw]) = fields(v.object("RequestedClientActions")?, [T, P])?;
        let name = required(t, T)?.str(T)?;
        Ok(match ActionType::from_name(name) {
            ActionType::SessionType => {
                const S: &str = "SessionType";
                let ([s, _], [_, props]) = fields(required(p, P)?.object(P)?, [S, "Properties"])?;
                Action::SessionType {
                    session_type: SessionType::from_name(&required(s, S)?.str(S)?),
                    properties: raw_opt(props),
                }
            }
            ActionType::KmsEncryption => {
                const K: &str = "KMSKeyId";
                const C: &str = "Challenge";
                let ([k, c], _) = fields(required(p, P)?.object(P)?, [K, C])?;
                Action::KmsEncryption {
                    kms_key_id: required(k, K)?.str(K)?,
                    challenge: c.map(|c| c.str(C)).transpose()?,
                }
            }
            ActionType::Other(action_type) => Action::Other {
                action_type,
                parameters: raw_opt(p_raw),
            },
        })
    }

    fn check(&self) -> Result<(), Error> {
        let raw = match self {
            Action::SessionType { properties, .. } => properties,
            Action::Other { parameters, .. } => parameters,
            Action::KmsEncryption { .. } => &None,
        };
        match raw {
            Some(r) => check_raw_value(r).map(|_| ()),
            None => Ok(()),
        }
    }

    fn write(&self, w: &mut Writer<'_>) {
        w.raw(b"{\"ActionType\":");
        self.action_type().write(w);
        w.raw(b",\"ActionParameters\":");
        match self {
            Action::SessionType {
                session_type,
                properties,
            } => {
                w.raw(b"{\"SessionType\":");
                JsonStr::new(session_type.as_str()).write(w);
                w.raw(b",\"Properties\":");
                w.raw(properties.unwrap_or("null").as_bytes());
                w.raw(b"}");
            }
            Action::KmsEncryption {
                kms_key_id,
                challenge,
            } => {
                w.raw(b"{\"KMSKeyId\":");
                kms_key_id.write(w);
                if let Some(c) = challenge {
                    w.raw(b",\"Challenge\":");
                    c.write(w);
                }
                w.raw(b"}");
            }
            Action::Other { parameters, .. } => w.raw(parameters.unwrap_or("null").as_bytes()),
        }
        w.raw(b"}");
    }
}

/// A JSON array of `T`: either the validated text of a parsed payload, or a slice you supply
/// for emission. Iterate with [`List::iter`].
pub struct List<'a, T> {
    repr: ListRepr<'a, T>,
}

enum ListRepr<'a, T> {
    Json(&'a str),
    Items(&'a [T]),
}

impl<T> Clone for List<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for List<'_, T> {}

impl<T> Clone for ListRepr<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for ListRepr<'_, T> {}

impl<'a, T> List<'a, T> {
    /// A list of the given items, for emission.
    pub const fn new(items: &'a [T]) -> Self {
        List {
            repr: ListRepr::Items(items),
        }
    }

    /// The empty list.
    pub const fn empty() -> Self {
        List::new(&[])
    }

    /// The items, in order.
    pub fn iter(&self) -> ListIter<'a, T> {
        match self.repr {
            ListRepr::Json(j) => ListIter {
                elements: Some(Elements::new(j)),
                items: [].iter(),
            },
            ListRepr::Items(items) => ListIter {
                elements: None,
                items: items.iter(),
            },
        }
    }
}

impl<T> Default for List<'_, T> {
    fn default() -> Self {
        List::empty()
    }
}

/// Iterator over a [`List`]. Items of a parsed list were validated by `parse`.
pub struct ListIter<'a, T> {
    elements: Option<Elements<'a>>,
    items: core::slice::Iter<'a, T>,
}

impl<'a, T: Copy> ListIter<'a, T> {
    fn next_with(&mut self, f: fn(Value<'a>) -> Result<T, Error>) -> Option<T> {
        match &mut self.elements {
            // Parse already converted every element once, so this cannot fail; stop if it does.
            Some(e) => e.next()?.and_then(f).ok(),
            None => self.items.next().copied(),
        }
    }
}

/// Iterator over a request's actions.
pub type Actions<'a> = ListIter<'a, Action<'a>>;

impl<'a> Iterator for ListIter<'a, Action<'a>> {
    type Item = Action<'a>;
    fn next(&mut self) -> Option<Action<'a>> {
        self.next_with(Action::from_value)
    }
}

impl<'a> Iterator for ListIter<'a, ProcessedAction<'a>> {
    type Item = ProcessedAction<'a>;
    fn next(&mut self) -> Option<ProcessedAction<'a>> {
        self.next_with(ProcessedAction::from_value)
    }
}

impl<'a> Iterator for ListIter<'a, JsonStr<'a>> {
    type Item = JsonStr<'a>;
    fn next(&mut self) -> Option<JsonStr<'a>> {
        self.next_with(|v| v.str("Errors"))
    }
}

impl<'a, T: PartialEq + Copy> PartialEq for List<'a, T>
where
    ListIter<'a, T>: Iterator<Item = T>,
{
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl<'a, T: Eq + Copy> Eq for List<'a, T> where ListIter<'a, T>: Iterator<Item = T> {}

impl<'a, T: fmt::Debug + Copy> fmt::Debug for List<'a, T>
where
    ListIter<'a, T>: Iterator<Item = T>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(feature = "defmt")]
impl<'a, T: defmt::Format + Copy> defmt::Format for List<'a, T>
where
    ListIter<'a, T>: Iterator<Item = T>,
{
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "[");
        for (i, item) in self.iter().enumerate() {
            if i > 0 {
                defmt::write!(f, ", ");
            }
            defmt::write!(f, "{}", item);
        }
        defmt::write!(f, "]");
    }
}

/// Checks every element of a JSON array converts, and wraps the array.
fn parse_list<'a, T>(
    v: Option<Value<'a>>,
    key: &'static str,
    f: fn(Value<'a>) -> Result<T, Error>,
) -> Result<List<'a, T>, Error> {
    let Some(v) = v else {
        return Ok(List::empty());
    };
    let raw = v.array(key)?;
    for e in Elements::new(raw) {
        f(e?)?;
    }
    Ok(List {
        repr: ListRepr::Json(raw),
    })
}

fn write_list<T>(w: &mut Writer<'_>, items: impl Iterator<Item = T>, f: impl Fn(&T, &mut Writer)) {
    w.raw(b"[");
    for (i, item) in items.enumerate() {
        if i > 0 {
            w.raw(b",");
        }
        f(&item, w);
    }
    w.raw(b"]");
}

/// The agent's handshake request (payload type 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct HandshakeRequest<'a> {
    /// `AgentVersion`, e.g. `3.3.40.0`.
    pub agent_version: JsonStr<'a>,
    /// `RequestedClientActions`; unknown action types are kept as [`Action::Other`].
    pub requested_client_actions: List<'a, Action<'a>>,
}

impl<'a> HandshakeRequest<'a> {
    /// Parses a handshake request. Every action is checked here, so iterating later cannot fail.
    ///
    /// # Errors
    /// Malformed JSON, a missing `AgentVersion`, or a malformed known action (a SessionType
    /// action without `SessionType`, a KMS action without `KMSKeyId`).
    pub fn parse(input: &'a [u8]) -> Result<Self, Error> {
        const V: &str = "AgentVersion";
        const A: &str = "RequestedClientActions";
        let [v, a] = document_fields(input, [V, A])?;
        Ok(HandshakeRequest {
            agent_version: required(v, V)?.str(V)?,
            requested_client_actions: parse_list(a, A, Action::from_value)?,
        })
    }

    /// The requested actions, in order.
    pub fn actions(&self) -> Actions<'a> {
        self.requested_client_actions.iter()
    }

    /// The first SessionType action's session type and raw Properties.
    pub fn session_type(&self) -> Option<(SessionType, Option<&'a str>)> {
        self.actions().find_map(|a| match a {
            Action::SessionType {
                session_type,
                properties,
            } => Some((session_type, properties)),
            _ => None,
        })
    }

    /// The KMS key id, if the agent asks for encryption.
    pub fn kms_key_id(&self) -> Option<JsonStr<'a>> {
        self.kms().map(|(k, _)| k)
    }

    /// The first KMSEncryption action's key id and `Challenge` (PROTOCOL.md §6).
    pub fn kms(&self) -> Option<(JsonStr<'a>, Option<JsonStr<'a>>)> {
        self.actions().find_map(|a| match a {
            Action::KmsEncryption {
                kms_key_id,
                challenge,
            } => Some((kms_key_id, challenge)),
            _ => None,
        })
    }

    /// Writes the payload.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`]; a raw Properties or parameters text that is not one JSON
    /// value gives the JSON error (nothing is written).
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, Error> {
        for a in self.actions() {
            a.check()?;
        }
        emit_with(buf, |w| {
            w.raw(b"{\"AgentVersion\":");
            self.agent_version.write(w);
            w.raw(b",\"RequestedClientActions\":");
            write_list(w, self.actions(), Action::write);
            w.raw(b"}");
        })
    }
}

/// `ActionStatus` of a processed action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ActionStatus {
    /// 1.
    Success,
    /// 2.
    Failed,
    /// 3.
    Unsupported,
    /// Any other value, preserved.
    Unknown(i64),
}

impl From<i64> for ActionStatus {
    fn from(v: i64) -> Self {
        match v {
            1 => ActionStatus::Success,
            2 => ActionStatus::Failed,
            3 => ActionStatus::Unsupported,
            v => ActionStatus::Unknown(v),
        }
    }
}

impl From<ActionStatus> for i64 {
    fn from(s: ActionStatus) -> i64 {
        match s {
            ActionStatus::Success => 1,
            ActionStatus::Failed => 2,
            ActionStatus::Unsupported => 3,
            ActionStatus::Unknown(v) => v,
        }
    }
}

/// `ActionResult` of a processed action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ActionResult<'a> {
    /// `null` (or absent).
    #[default]
    None,
    /// The KMS data key: `{"KMSCipherTextKey":"<base64>","KMSCipherTextHash":"<base64>",
    /// "ChallengeAcknowledgement":true}` (PROTOCOL.md §6).
    Kms {
        /// `KMSCipherTextKey`: the ciphertext blob from KMS GenerateDataKey, base64.
        cipher_text_key: JsonStr<'a>,
        /// `KMSCipherTextHash`: SHA-256 of the blob, base64.
        cipher_text_hash: JsonStr<'a>,
        /// `ChallengeAcknowledgement`: the data key's encryption context holds the request's
        /// `Challenge` as `aws:ssm:RandomChallenge`. Absent reads as `false` and `false` is
        /// not written (older clients send no such key).
        challenge_acknowledgement: bool,
    },
    /// Any other value, raw JSON text.
    Other(&'a str),
}

/// One entry of `ProcessedClientActions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ProcessedAction<'a> {
    /// `ActionType`, echoing the request.
    pub action_type: ActionType<'a>,
    /// `ActionStatus`.
    pub status: ActionStatus,
    /// `ActionResult`.
    pub result: ActionResult<'a>,
    /// `Error`: empty on success.
    pub error: JsonStr<'a>,
}

impl<'a> ProcessedAction<'a> {
    fn from_value(v: Value<'a>) -> Result<Self, Error> {
        const T: &str = "ActionType";
        const S: &str = "ActionStatus";
        const R: &str = "ActionResult";
        const E: &str = "Error";
        let ([t, s, r, e], [_, _, r_raw, _]) =
            fields(v.object("ProcessedClientActions")?, [T, S, R, E])?;
        let result = match r {
            None => ActionResult::None,
            Some(Value::Object(o)) => {
                const K: &str = "KMSCipherTextKey";
                const H: &str = "KMSCipherTextHash";
                const A: &str = "ChallengeAcknowledgement";
                match fields(o, [K, H, A])?.0 {
                    [Some(k), Some(h), a] => ActionResult::Kms {
                        cipher_text_key: k.str(K)?,
                        cipher_text_hash: h.str(H)?,
                        challenge_acknowledgement: a.map_or(Ok(false), |a| a.bool(A))?,
                    },
                    _ => ActionResult::Other(r_raw),
                }
            }
            Some(_) => ActionResult::Other(r_raw),
        };
        Ok(ProcessedAction {
            action_type: ActionType::from_name(required(t, T)?.str(T)?),
            status: ActionStatus::from(required(s, S)?.i64(S)?),
            result,
            error: opt_str(e, E)?,
        })
    }

    fn write(&self, w: &mut Writer<'_>) {
        w.raw(b"{\"ActionType\":");
        self.action_type.write(w);
        w.raw(b",\"ActionStatus\":");
        w.i64(self.status.into());
        w.raw(b",\"ActionResult\":");
        match self.result {
            ActionResult::None => w.raw(b"null"),
            ActionResult::Kms {
                cipher_text_key,
                cipher_text_hash,
                challenge_acknowledgement,
            } => {
                w.raw(b"{\"KMSCipherTextKey\":");
                cipher_text_key.write(w);
                w.raw(b",\"KMSCipherTextHash\":");
                cipher_text_hash.write(w);
                if challenge_acknowledgement {
                    w.raw(b",\"ChallengeAcknowledgement\":true");
                }
                w.raw(b"}");
            }
            ActionResult::Other(raw) => w.raw(raw.as_bytes()),
        }
        w.raw(b",\"Error\":");
        self.error.write(w);
        w.raw(b"}");
    }
}

/// The client's handshake response (payload type 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct HandshakeResponse<'a> {
    /// `ClientVersion`.
    pub client_version: JsonStr<'a>,
    /// `ProcessedClientActions`, one per requested action.
    pub processed_client_actions: List<'a, ProcessedAction<'a>>,
    /// `Errors`: messages for the agent's log.
    pub errors: List<'a, JsonStr<'a>>,
}

impl<'a> HandshakeResponse<'a> {
    /// Parses a handshake response. Absent lists read as empty.
    ///
    /// # Errors
    /// Malformed JSON, a missing `ClientVersion`, or a malformed processed action.
    pub fn parse(input: &'a [u8]) -> Result<Self, Error> {
        const V: &str = "ClientVersion";
        const P: &str = "ProcessedClientActions";
        const E: &str = "Errors";
        let [v, p, e] = document_fields(input, [V, P, E])?;
        Ok(HandshakeResponse {
            client_version: required(v, V)?.str(V)?,
            processed_client_actions: parse_list(p, P, ProcessedAction::from_value)?,
            errors: parse_list(e, E, |v| v.str(E))?,
        })
    }

    /// Writes the payload in the official client's key order.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`]; an [`ActionResult::Other`] that is not one JSON value gives the
    /// JSON error (nothing is written).
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, Error> {
        for p in self.processed_client_actions.iter() {
            if let ActionResult::Other(raw) = p.result {
                json::check_raw_value(raw)?;
            }
        }
        emit_with(buf, |w| {
            w.raw(b"{\"ClientVersion\":");
            self.client_version.write(w);
            w.raw(b",\"ProcessedClientActions\":");
            write_list(
                w,
                self.processed_client_actions.iter(),
                ProcessedAction::write,
            );
            w.raw(b",\"Errors\":");
            write_list(w, self.errors.iter(), |e, w| e.write(w));
            w.raw(b"}");
        })
    }
}
