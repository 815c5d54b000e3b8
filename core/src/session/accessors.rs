//! What the session knows: read-only accessors (handshake results, counters, timers) and the
//! redacted `Debug`.

use core::fmt;

use super::{CloseReason, Phase, Role, Session, Stats};
use crate::model::OwnedToken;
use crate::payload::SessionType;
use crate::time::Duration;

impl<
        const SEND: usize,
        const UNACKED: usize,
        const REORDER: usize,
        const RECV: usize,
        const TXQ: usize,
    > Session<SEND, UNACKED, REORDER, RECV, TXQ>
{
    /// The role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Whether the handshake completed and the session is not closed.
    pub fn is_established(&self) -> bool {
        self.phase == Phase::Established
    }

    /// Whether the session has ended.
    pub fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed(_))
    }

    /// Why the session ended, once it has.
    pub fn close_reason(&self) -> Option<CloseReason> {
        match self.phase {
            Phase::Closed(r) => Some(r),
            _ => None,
        }
    }

    /// The `channel_closed` Output text (client: received; agent: sent), possibly empty.
    pub fn close_message(&self) -> &str {
        self.close_message.as_str()
    }

    /// The session type (client: from the HandshakeRequest, once received; agent: configured).
    pub fn session_type(&self) -> Option<SessionType> {
        self.session_type
    }

    /// The raw `Properties` JSON of the SessionType action; `None` before the request, when
    /// absent or `null`, or longer than [`MAX_PROPERTIES_LEN`](super::MAX_PROPERTIES_LEN).
    pub fn properties(&self) -> Option<&str> {
        (self.properties_kept && !self.properties.is_empty() && self.properties.as_str() != "null")
            .then_some(self.properties.as_str())
    }

    /// The agent's version (client: from the HandshakeRequest).
    pub fn agent_version(&self) -> Option<&str> {
        (!self.agent_version.is_empty()).then_some(self.agent_version.as_str())
    }

    /// The client's version (client: configured; agent: from the HandshakeResponse).
    pub fn client_version(&self) -> Option<&str> {
        (!self.client_version.is_empty()).then_some(self.client_version.as_str())
    }

    /// HandshakeComplete's `CustomerMessage` (empty when none); show it to the user.
    pub fn customer_message(&self) -> &str {
        self.customer_message.as_str()
    }

    /// The KMS key id of a `KMSEncryption` action (client: requested by the agent).
    pub fn kms_key_id(&self) -> Option<&str> {
        self.kms_requested.then_some(self.kms_key_id.as_str())
    }

    /// Agent role: the token from the client's OpenDataChannelInput, to authenticate it when
    /// [`Event::Opened`](super::Event::Opened) comes (the HandshakeRequest is queued only as that event is polled, so
    /// calling [`close_channel`](Self::close_channel) right then refuses the client before it
    /// learns anything). Never log it.
    pub fn peer_token(&self) -> Option<&str> {
        match self.role {
            Role::Agent => self.token.as_ref().map(OwnedToken::expose_secret),
            Role::Client => None,
        }
    }

    /// Client role: the exit code received, if any.
    pub fn exit_code(&self) -> Option<i32> {
        self.exit_code
    }

    /// Agent role: the latest terminal size received.
    pub fn terminal_size(&self) -> Option<(u32, u32)> {
        self.terminal_size
    }

    /// Payload bytes sent or queued and not yet acknowledged.
    pub fn unacked_bytes(&self) -> usize {
        self.send.unacked_bytes()
    }

    /// The current retransmission timeout from the estimator (official formula and ceiling).
    /// A message's actual timeout is at least this; see [`Config::max_rto`](super::Config::max_rto) for what can make
    /// it longer.
    pub fn rto(&self) -> Duration {
        self.rtt.rto()
    }

    /// The smoothed round-trip time.
    pub fn srtt(&self) -> Duration {
        self.rtt.srtt()
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Whether the agent has paused our publication.
    pub fn is_paused(&self) -> bool {
        self.paused
    }
}

impl<
        const SEND: usize,
        const UNACKED: usize,
        const REORDER: usize,
        const RECV: usize,
        const TXQ: usize,
    > fmt::Debug for Session<SEND, UNACKED, REORDER, RECV, TXQ>
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("role", &self.role)
            .field("phase", &self.phase)
            .field("transport_up", &self.transport_up)
            .field("token", &self.token)
            .field("next_seq", &self.send.next_seq())
            .field("expected", &self.expected)
            .field("unacked_bytes", &self.send.unacked_bytes())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}
