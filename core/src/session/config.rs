//! Session configuration: role, seed, and the reliability constants.

use crate::payload::SessionType;
use crate::time::Duration;

/// Which end of the data channel this session plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Role {
    /// What users run: opens the channel, answers the handshake, sends `input_stream_data`.
    Client,
    /// What the local emulator and the tests run: sends the handshake and `output_stream_data`.
    Agent,
}

/// KMS session encryption (PROTOCOL.md §6; the engine's side is in
/// [`Session::set_data_key`](super::Session::set_data_key) and its neighbours).
///
/// Client role: how to answer a `KMSEncryption` handshake action. Agent role: the action goes
/// out when [`AgentHandshake::kms_key_id`] is set (and the session type is not `Port`); this
/// says whether a client that does not acknowledge the challenge is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Encryption {
    /// Client: answer `KMSEncryption` with ActionStatus 3 (unsupported); the agent then
    /// decides whether to go on unencrypted (the real one refuses). Agent: accept a client that
    /// does not acknowledge the challenge.
    #[default]
    Unsupported,
    /// Client: ask the driver for a KMS data key ([`Event::DataKeyNeeded`](super::Event)) and
    /// encrypt the session with it; this client always acknowledges the challenge. Agent: refuse
    /// a client that does not acknowledge it when `require_challenge` is set (the agent's
    /// `Kms.RequireKMSChallengeResponse`).
    Kms {
        /// Agent role: refuse a client that does not acknowledge the challenge.
        require_challenge: bool,
    },
}

/// What the agent role puts in its HandshakeRequest and HandshakeComplete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentHandshake<'a> {
    /// `AgentVersion` (e.g. `3.3.0.0`).
    pub agent_version: &'a str,
    /// `SessionType`.
    pub session_type: SessionType,
    /// `Properties`: raw JSON (an object, or `null`), copied verbatim into the request.
    pub properties: &'a str,
    /// When set, the request also carries a `KMSEncryption` action with this key id, and the
    /// agent refuses a client that does not process it (as the real agent does).
    pub kms_key_id: Option<&'a str>,
    /// `CustomerMessage` of HandshakeComplete.
    pub customer_message: &'a str,
}

impl AgentHandshake<'static> {
    /// A shell session (`Standard_Stream`) from agent version 3.3.0.0.
    pub const SHELL: AgentHandshake<'static> = AgentHandshake {
        agent_version: "3.3.0.0",
        session_type: SessionType::StandardStream,
        properties: "null",
        kms_key_id: None,
        customer_message: "",
    };
}

/// The version this client reports in `ClientVersion`: the official client release whose
/// wire behaviour the engine follows (SigV4-signed upgrade from 1.2.764.0, smux multiplexing;
/// PROTOCOL.md §1). The agent gates features on it, so it must not be lower. The one source of
/// this number: the CLI answers `session-manager-plugin --version` with it too.
pub const DEFAULT_CLIENT_VERSION: &str = "1.2.779.0";

/// The `REORDER` capacity of a default [`Session`](super::Session): incoming messages it holds
/// out of order.
pub const DEFAULT_REORDER: usize = 16;

/// Session configuration. Every field is public; start from [`Config::client`] or
/// [`Config::agent`], which fill in the documented defaults.
#[derive(Debug, Clone, Copy)]
pub struct Config<'a> {
    /// The role.
    pub role: Role,
    /// Seeds the message-id generator (and the ClientId and RequestIds): the same seed and
    /// inputs give the same frames, which tests want. In production take it from a random
    /// source (the OS, a hardware RNG) so that ids differ between sessions.
    pub seed: u64,
    /// Largest payload of one data message. Default 1024: what the agent and the official client
    /// read per message (PROTOCOL.md §4).
    pub chunk_size: usize,
    /// Most payload bytes sent but not yet acknowledged; `write` takes no more. Default 256 KiB,
    /// a value another client found safe (PROTOCOL.md §4). Also bounded by the session's send
    /// capacity (`SEND`).
    pub window: usize,
    /// Initial round-trip estimate. Default 100 ms (official `DefaultRoundTripTime`).
    pub initial_rtt: Duration,
    /// Initial retransmission timeout. Default 200 ms (official `DefaultTransmissionTimeout`).
    pub initial_rto: Duration,
    /// Ceiling of the retransmission timeout computed from the estimator. Default 1 s (official
    /// `MaxTransmissionTimeout`). Two things can make a message wait longer: the timeout is
    /// never shorter than the latest measured round trip plus its variance term (a queue longer
    /// than a second must not make every message in it time out), and it doubles with each
    /// timeout that no acknowledgement answers (up to 16 times it), so a frozen path is not
    /// flooded.
    pub max_rto: Duration,
    /// Floor of the variance term of the timeout. Default 10 ms (official `ClockGranularity`).
    pub rttvar_floor: Duration,
    /// How long a message may stay unacknowledged before the session gives up with
    /// [`CloseReason::GaveUp`](super::CloseReason::GaveUp): counted from the last
    /// acknowledgement (or from the first message sent after an idle spell), also while the
    /// transport is down, and not while the agent has paused publication. Default 5 minutes:
    /// the official client's 3000 resends every 100 ms.
    pub give_up: Duration,
    /// Most messages in flight counted from the oldest unacknowledged one (which included): a
    /// message further ahead waits until that one is acknowledged. Set it to what the peer
    /// holds out of order plus one, and a lost message costs one retransmission instead of
    /// everything the peer had to drop behind it. Retransmissions go out oldest first and
    /// within the same bound, after a reconnect too.
    ///
    /// Default 10 000 for both roles: the official agent's `IncomingMessageBufferCapacity`
    /// (PROTOCOL.md §4), so in practice the window binds first. The official agent sets no
    /// such bound on what it sends, and neither does this library's agent role by default: a
    /// bound of a few messages caps throughput at that many messages per round trip, and the
    /// round trip grows with every byte queued in the other direction (acknowledgements wait
    /// behind data on a saturated link). Over a WebSocket nothing is lost while the connection
    /// lives, so the peer holds nothing out of order; set this to the peer's `REORDER` plus
    /// one for a lossy test network (as the fault-injecting emulator does).
    pub max_ahead: usize,
    /// How long the handshake may take, counted from the first
    /// [`handle_connected`](super::Session::handle_connected): client, until HandshakeComplete
    /// (or an old agent's first output); agent, until the client's OpenDataChannelInput and its
    /// HandshakeResponse have arrived. When it passes the session closes with
    /// [`CloseReason::HandshakeTimeout`](super::CloseReason::HandshakeTimeout) (the agent role
    /// tells a connected client with `channel_closed`), so a silent or stuck peer cannot make
    /// the session wait forever. Reconnects do not restart it.
    ///
    /// Default 60 s. The official agent gives the client 15 s to answer its HandshakeRequest
    /// (`handshakeTimeout` in `agent/session/datachannel/datachannel.go` of
    /// aws/amazon-ssm-agent); the official client has no such limit and waits forever. A
    /// client's limit must be longer than the agent's, so that a slow but working agent
    /// (starting its session plugin, reaching KMS) reports its own error first; four times the
    /// agent's value leaves room for a reconnect or two during the handshake.
    pub handshake_timeout: Duration,
    /// `ClientVersion` sent in OpenDataChannelInput and HandshakeResponse (client role).
    pub client_version: &'a str,
    /// How the client answers `KMSEncryption`.
    pub encryption: Encryption,
    /// The agent role's handshake content (ignored by the client role).
    pub agent: AgentHandshake<'a>,
}

impl Config<'static> {
    /// A client configuration with the defaults above.
    pub const fn client(seed: u64) -> Self {
        Config {
            role: Role::Client,
            seed,
            chunk_size: 1024,
            window: 256 * 1024,
            initial_rtt: Duration::from_millis(100),
            initial_rto: Duration::from_millis(200),
            max_rto: Duration::from_secs(1),
            rttvar_floor: Duration::from_millis(10),
            give_up: Duration::from_secs(5 * 60),
            max_ahead: 10_000,
            handshake_timeout: Duration::from_secs(60),
            client_version: DEFAULT_CLIENT_VERSION,
            encryption: Encryption::Unsupported,
            agent: AgentHandshake::SHELL,
        }
    }
}

impl<'a> Config<'a> {
    /// An agent configuration with the defaults above and this handshake content.
    pub const fn agent(seed: u64, handshake: AgentHandshake<'a>) -> Self {
        let c = Config::client(seed);
        Config {
            role: Role::Agent,
            seed,
            chunk_size: c.chunk_size,
            window: c.window,
            initial_rtt: c.initial_rtt,
            initial_rto: c.initial_rto,
            max_rto: c.max_rto,
            rttvar_floor: c.rttvar_floor,
            give_up: c.give_up,
            max_ahead: c.max_ahead,
            handshake_timeout: c.handshake_timeout,
            client_version: c.client_version,
            encryption: c.encryption,
            agent: handshake,
        }
    }
}
