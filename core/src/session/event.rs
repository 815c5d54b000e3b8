//! What the session tells its driver: events, transmits, errors, counters.

use core::fmt;

use crate::payload::Flag;

/// Input from the transport: one WebSocket message.
#[derive(Debug, Clone, Copy)]
pub enum Incoming<'a> {
    /// A text message (the agent role receives OpenDataChannelInput this way).
    Text(&'a [u8]),
    /// A binary message: one frame.
    Binary(&'a [u8]),
}

/// How to send what [`Session::poll_transmit`](super::Session::poll_transmit) wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum TransmitKind {
    /// As a WebSocket text message (OpenDataChannelInput).
    Text,
    /// As a WebSocket binary message (a frame).
    Binary,
}

/// What a [`Transmit`] is, so a driver never parses what it is told to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum TransmitClass {
    /// The OpenDataChannelInput text: the first message on every connection (client role).
    Open,
    /// An unsequenced `acknowledge` frame. It may overtake queued data: the peer times its
    /// message from when it sent it, so an acknowledgement held behind a backlog of our data
    /// makes the peer resend what already arrived.
    Acknowledge,
    /// Another unsequenced control frame (`pause_publication`, `start_publication`,
    /// `channel_closed`). Sent in order: `channel_closed` must not pass the data before it.
    Control,
    /// A sequenced stream message (data, or a control payload carried in the stream: handshake,
    /// size, flag, exit code). Sent in order.
    Stream,
}

impl TransmitClass {
    /// Whether a driver that queues messages may send this one ahead of messages queued
    /// before it (only acknowledgements may). Everything else keeps the order in which
    /// [`poll_transmit`](super::Session::poll_transmit) produced it.
    pub const fn may_overtake(self) -> bool {
        matches!(self, TransmitClass::Acknowledge)
    }
}

/// One WebSocket message written into the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[must_use]
pub struct Transmit {
    /// Bytes written at the start of the buffer.
    pub len: usize,
    /// Text or binary (text exactly when `class` is [`TransmitClass::Open`]).
    pub kind: TransmitKind,
    /// What the message is, and whether it may overtake queued data.
    pub class: TransmitClass,
}

/// Which stream delivered bytes belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Stream {
    /// Payload type 1: the remote's output (client role) or the client's input (agent role).
    Output,
    /// Payload type 11: the remote's standard error (client role only).
    StdErr,
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum CloseReason {
    /// The peer sent `channel_closed`; its `Output` text is
    /// [`Session::close_message`](super::Session::close_message).
    ChannelClosed,
    /// This side closed in order: [`close`](super::Session::close) saw everything acknowledged,
    /// or the agent role sent `channel_closed`.
    Local,
    /// [`terminate`](super::Session::terminate) completed: the agent acknowledged the
    /// TerminateSession flag (or closed the channel).
    Terminated,
    /// A message stayed unacknowledged for [`Config::give_up`](super::Config::give_up).
    GaveUp,
    /// The handshake did not complete within
    /// [`Config::handshake_timeout`](super::Config::handshake_timeout).
    HandshakeTimeout,
    /// The handshake failed: the agent role got a refusal of its session type or encryption.
    HandshakeFailed,
    /// The peer broke the protocol (e.g. an unreadable HandshakeRequest).
    ProtocolViolation,
    /// KMS encryption could not be set up (PROTOCOL.md §6).
    Encryption(EncryptionFailure),
}

impl CloseReason {
    /// A static description, lower case.
    pub const fn as_str(&self) -> &'static str {
        match self {
            CloseReason::ChannelClosed => "the agent closed the channel",
            CloseReason::Local => "closed locally after all data was acknowledged",
            CloseReason::Terminated => "session terminated",
            CloseReason::GaveUp => "gave up: a message stayed unacknowledged too long",
            CloseReason::HandshakeTimeout => "the handshake did not complete in time",
            CloseReason::HandshakeFailed => "handshake failed",
            CloseReason::ProtocolViolation => "the peer violated the protocol",
            CloseReason::Encryption(f) => f.as_str(),
        }
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why KMS encryption could not be set up ([`CloseReason::Encryption`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum EncryptionFailure {
    /// The driver could not get the data key from KMS (client) or KMS would not decrypt it
    /// (agent): `Session::refuse_data_key`.
    KeyRefused,
    /// Agent: the client reported success without a KMS result, its KMSCipherTextKey is
    /// unreadable, or KMSCipherTextHash is not its SHA-256.
    BadCipherTextKey,
    /// Agent: the client did not acknowledge the challenge, and the configuration requires it.
    ChallengeNotAcknowledged,
    /// The encryption challenge failed: unreadable, the wrong length, sealed under another key,
    /// or not the bytes the agent sent.
    ChallengeFailed,
    /// Client: the agent's KMSEncryption action is unusable (a `Challenge` that is not base64 of
    /// 16 bytes, or a key id longer than [`MAX_TEXT_LEN`](super::MAX_TEXT_LEN)).
    BadRequest,
}

impl EncryptionFailure {
    /// A static description, lower case.
    pub const fn as_str(&self) -> &'static str {
        match self {
            EncryptionFailure::KeyRefused => "kms encryption failed: kms refused the data key",
            EncryptionFailure::BadCipherTextKey => {
                "kms encryption failed: the client's ciphertext key or its hash is wrong"
            }
            EncryptionFailure::ChallengeNotAcknowledged => {
                "kms encryption failed: the client did not acknowledge the kms challenge"
            }
            EncryptionFailure::ChallengeFailed => {
                "kms encryption failed: the encryption challenge did not verify"
            }
            EncryptionFailure::BadRequest => {
                "kms encryption failed: the agent's kms request is unreadable"
            }
        }
    }
}

impl fmt::Display for EncryptionFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something the driver may act on. Small and `Copy`: events never borrow the session; fetch
/// data with [`Session::read`](super::Session::read) and the accessors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Event {
    /// Agent role: OpenDataChannelInput arrived (on every connection, reconnects too); check
    /// [`Session::peer_token`](super::Session::peer_token) now. The first time, the
    /// HandshakeRequest is queued as this event is returned.
    Opened,
    /// The handshake finished; data may flow. Client: see
    /// [`Session::customer_message`](super::Session::customer_message). With an agent too old
    /// for the handshake, it comes with the first output and the session type is a shell (as
    /// the official client assumes).
    HandshakeComplete,
    /// Stream bytes wait: call [`Session::read`](super::Session::read) until it returns `None`.
    Readable,
    /// `write` may take bytes again after it returned less than offered.
    Writable,
    /// Agent role: the client's terminal size.
    Resized {
        /// Columns.
        cols: u32,
        /// Rows.
        rows: u32,
    },
    /// Agent role: the client sent a flag, in stream order: it comes once every input byte
    /// sent before it has been [`read`](super::Session::read), and no byte sent after it can
    /// be read before it is polled. So the bytes read before this event are exactly those
    /// before the flag (a DisconnectToPort ends the target connection right there).
    Flag(Flag),
    /// Client role: the remote command's exit code (after all its output).
    ExitCode(i32),
    /// Client role: the agent asks for KMS encryption. Call KMS `GenerateDataKey` with
    /// [`Session::data_key_request`](super::Session::data_key_request), then
    /// [`Session::set_data_key`](super::Session::set_data_key) (or
    /// [`Session::refuse_data_key`](super::Session::refuse_data_key)) before the handshake
    /// times out.
    #[cfg(feature = "kms")]
    DataKeyNeeded,
    /// Agent role: the client sent its data key. Call KMS `Decrypt` on
    /// [`Session::data_key_ciphertext`](super::Session::data_key_ciphertext) under
    /// [`Session::data_key_context`](super::Session::data_key_context), then
    /// [`Session::set_decrypted_data_key`](super::Session::set_decrypted_data_key) (or
    /// [`Session::refuse_data_key`](super::Session::refuse_data_key)).
    #[cfg(feature = "kms")]
    DataKeyToDecrypt,
    /// Client role: the agent asked us to stop sending data.
    PublicationPaused,
    /// Client role: the agent lets us send data again.
    PublicationResumed,
    /// The session ended; always the last event.
    Closed(CloseReason),
}

/// Input rejected by [`Session::handle_input`](super::Session::handle_input).
///
/// Only [`Error::is_fatal`] errors end the session (and then an [`Event::Closed`] follows); the
/// others drop one message, are counted in [`Stats`], and the session goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Error {
    /// Peer sent garbage: a malformed frame (bad lengths, digest), dropped.
    Frame(crate::wire::Error),
    /// Peer sent garbage: an unreadable control payload, dropped (fatal for a handshake message).
    Payload(crate::payload::Error),
    /// Peer misbehaved: a message this role never receives (or none before the channel opened),
    /// dropped.
    Unexpected,
    /// Peer misbehaved fatally: the handshake cannot go on; the session is closed.
    Handshake(crate::payload::Error),
    /// The session is closed; input is ignored.
    Closed,
    /// The token is longer than [`MAX_TOKEN_LEN`](super::MAX_TOKEN_LEN) (API misuse, or an
    /// agent-role peer's garbage).
    TokenTooLong,
    /// The token is empty or not visible ASCII without `"` and `\` (see
    /// [`model::Token`](crate::model::Token)).
    BadToken,
    /// Peer sent garbage (or an attacker altered it): an encrypted payload that does not
    /// authenticate under the session key. Dropped **unacknowledged**, as the agent does, so the
    /// sender resends it: a corrupted copy costs one retransmission, and a peer that keeps
    /// sending what does not open ends in its give-up.
    #[cfg(feature = "kms")]
    Decrypt(crate::kms::Error),
    /// KMS encryption failed during the handshake; the session is closed with
    /// [`CloseReason::Encryption`].
    Encryption(EncryptionFailure),
}

impl Error {
    /// A static description, lower case.
    pub const fn as_str(&self) -> &'static str {
        match self {
            Error::Frame(e) => e.as_str(),
            Error::Payload(e) => e.as_str(),
            Error::Unexpected => "unexpected message for this role or state",
            Error::Handshake(_) => "unreadable handshake message",
            Error::Closed => "session closed",
            Error::TokenTooLong => "token longer than the session can store",
            Error::BadToken => "token empty or not printable ascii",
            #[cfg(feature = "kms")]
            Error::Decrypt(e) => e.as_str(),
            Error::Encryption(f) => f.as_str(),
        }
    }

    /// Whether the error ended the session.
    pub const fn is_fatal(&self) -> bool {
        matches!(self, Error::Handshake(_) | Error::Encryption(_))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Which check of the payload failed (and in which field), not just that it did.
            Error::Handshake(e) => write!(f, "{}: {e}", self.as_str()),
            _ => f.write_str(self.as_str()),
        }
    }
}

impl core::error::Error for Error {}

/// A write, flag or exit code that was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum WriteError {
    /// No room now (window full, or the handshake has not completed); [`Event::Writable`] follows.
    Blocked,
    /// The session is closing or closed.
    Closed,
    /// API misuse: this role does not send that (e.g. stderr from a client).
    WrongRole,
}

impl WriteError {
    /// A static description, lower case.
    pub const fn as_str(&self) -> &'static str {
        match self {
            WriteError::Blocked => "send window full; wait for writable",
            WriteError::Closed => "session closing or closed",
            WriteError::WrongRole => "this role does not send that",
        }
    }
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl core::error::Error for WriteError {}

/// Counters, for logs and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Stats {
    /// Frames and text messages handed to `handle_input`.
    pub messages_in: u32,
    /// Frames and text messages produced by `poll_transmit`.
    pub messages_out: u32,
    /// Malformed frames or payloads dropped.
    pub bad_input: u32,
    /// Stream messages received again after delivery or while held (re-acknowledged).
    pub duplicates: u32,
    /// Stream messages dropped unacknowledged (too far ahead, or no room to hold them).
    pub dropped_unacked: u32,
    /// Retransmissions of our stream messages.
    pub retransmits: u32,
    /// Acknowledgements that named nothing in flight (or a wrong id).
    pub unknown_acks: u32,
    /// Acknowledgements of duplicates not sent because the transmit queue was full (the peer
    /// resends, and the next copy is acknowledged). A new message's acknowledgement is never
    /// dropped: while the queue is full the message is held and its acknowledgement owed.
    pub acks_dropped: u32,
    /// New messages held because the transmit queue had no room for their acknowledgement
    /// (sent, and the message delivered, once there is room).
    pub acks_deferred: u32,
}

impl Stats {
    /// All zero.
    pub const ZERO: Stats = Stats {
        messages_in: 0,
        messages_out: 0,
        bad_input: 0,
        duplicates: 0,
        dropped_unacked: 0,
        retransmits: 0,
        unknown_acks: 0,
        acks_dropped: 0,
        acks_deferred: 0,
    };
}
