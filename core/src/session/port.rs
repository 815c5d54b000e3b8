//! Which way a port session runs, chosen from the handshake (PROTOCOL.md §5), so that no driver
//! compares session type names or versions itself.

use core::fmt;

use super::Session;
use crate::payload::{self, PortProperties, SessionType};
use crate::smux;

/// How a client runs a port session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum PortMode {
    /// Listen locally; connections are smux streams over the session.
    Multiplexed,
    /// Listen locally; one connection at a time, each ended by a DisconnectToPort flag.
    Basic,
    /// No listener: the session is one byte stream (SSH's `ProxyCommand` over stdin/stdout).
    Stream,
}

/// Why a session has no [`PortMode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum PortModeError {
    /// Not a port session (or the handshake has not said yet).
    NotPort,
    /// The Port session's Properties are missing, too long to keep, or unreadable.
    Properties(payload::Error),
}

impl PortModeError {
    /// A static description, lower case.
    pub const fn as_str(&self) -> &'static str {
        match self {
            PortModeError::NotPort => "not a port session",
            PortModeError::Properties(_) => "unreadable port session properties",
        }
    }
}

impl fmt::Display for PortModeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortModeError::NotPort => f.write_str(self.as_str()),
            PortModeError::Properties(e) => write!(f, "port properties: {}", e.as_str()),
        }
    }
}

impl core::error::Error for PortModeError {}

impl PortMode {
    /// The mode for a handshake: a `Port` session is [`Stream`](PortMode::Stream) unless its
    /// Properties' `type` is `LocalPortForwarding`; then [`Multiplexed`](PortMode::Multiplexed)
    /// when both versions allow it ([`smux::multiplexed`]), else [`Basic`](PortMode::Basic).
    ///
    /// # Errors
    /// [`PortModeError::NotPort`] for another session type; [`PortModeError::Properties`]
    /// when `properties` (the raw JSON; `None` when absent) does not parse.
    pub fn of(
        session_type: Option<SessionType>,
        properties: Option<&str>,
        agent_version: &str,
        client_version: &str,
    ) -> Result<PortMode, PortModeError> {
        if session_type != Some(SessionType::Port) {
            return Err(PortModeError::NotPort);
        }
        let props = PortProperties::parse(properties.unwrap_or("").as_bytes())
            .map_err(PortModeError::Properties)?;
        Ok(if !props.is_local_port_forwarding() {
            PortMode::Stream
        } else if smux::multiplexed(agent_version, client_version) {
            PortMode::Multiplexed
        } else {
            PortMode::Basic
        })
    }
}

impl<
        const SEND: usize,
        const UNACKED: usize,
        const REORDER: usize,
        const RECV: usize,
        const TXQ: usize,
    > Session<SEND, UNACKED, REORDER, RECV, TXQ>
{
    /// The port mode this session's handshake chose ([`PortMode::of`] of its session type,
    /// Properties and both versions).
    ///
    /// # Errors
    /// As [`PortMode::of`]; [`PortModeError::NotPort`] before the handshake says.
    pub fn port_mode(&self) -> Result<PortMode, PortModeError> {
        PortMode::of(
            self.session_type(),
            self.properties(),
            self.agent_version().unwrap_or(""),
            self.client_version().unwrap_or(""),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCAL: &str =
        r#"{"portNumber":"22","localPortNumber":"2222","type":"LocalPortForwarding"}"#;
    const SSH: &str = r#"{"portNumber":"22"}"#;

    fn of(t: SessionType, p: &str, agent: &str, client: &str) -> Result<PortMode, PortModeError> {
        PortMode::of(Some(t), Some(p), agent, client)
    }

    #[test]
    fn local_forwarding_is_multiplexed_from_both_thresholds() {
        let p = SessionType::Port;
        assert_eq!(
            of(p, LOCAL, "3.0.196.0", "1.1.70"),
            Ok(PortMode::Multiplexed)
        );
        assert_eq!(
            of(p, LOCAL, "3.3.40.0", "1.2.779.0"),
            Ok(PortMode::Multiplexed)
        );
        assert_eq!(of(p, LOCAL, "3.0.195.9", "1.2.779.0"), Ok(PortMode::Basic));
        assert_eq!(of(p, LOCAL, "3.3.40.0", "1.1.69.9"), Ok(PortMode::Basic));
        assert_eq!(of(p, LOCAL, "", "1.2.779.0"), Ok(PortMode::Basic));
        assert_eq!(of(p, LOCAL, "3.x", "1.2.779.0"), Ok(PortMode::Basic));
    }

    #[test]
    fn without_local_port_forwarding_a_port_session_is_a_stream() {
        let p = SessionType::Port;
        assert_eq!(of(p, SSH, "3.3.40.0", "1.2.779.0"), Ok(PortMode::Stream));
        let other = r#"{"portNumber":"22","type":"Something"}"#;
        assert_eq!(of(p, other, "3.3.40.0", "1.2.779.0"), Ok(PortMode::Stream));
    }

    #[test]
    fn other_sessions_and_bad_properties_are_errors() {
        for t in [
            SessionType::StandardStream,
            SessionType::InteractiveCommands,
            SessionType::NonInteractiveCommands,
            SessionType::Unknown,
        ] {
            assert_eq!(
                of(t, LOCAL, "3.3.40.0", "1.2.779.0"),
                Err(PortModeError::NotPort)
            );
        }
        assert_eq!(
            PortMode::of(None, Some(LOCAL), "3.3.40.0", "1.2.779.0"),
            Err(PortModeError::NotPort)
        );
        assert!(matches!(
            of(SessionType::Port, "{not json", "3.3.40.0", "1.2.779.0"),
            Err(PortModeError::Properties(_))
        ));
        assert!(matches!(
            PortMode::of(Some(SessionType::Port), None, "3.3.40.0", "1.2.779.0"),
            Err(PortModeError::Properties(_))
        ));
    }

    #[test]
    fn a_session_reports_the_mode_its_handshake_chose() {
        use crate::session::tests::established;
        use crate::session::AgentHandshake;
        let h = AgentHandshake {
            session_type: SessionType::Port,
            properties: LOCAL,
            agent_version: "3.3.40.0",
            ..AgentHandshake::SHELL
        };
        let (c, a) = established(h);
        assert_eq!(c.port_mode(), Ok(PortMode::Multiplexed));
        assert_eq!(a.port_mode(), Ok(PortMode::Multiplexed));
        let (c, _) = established(AgentHandshake::SHELL);
        assert_eq!(c.port_mode(), Err(PortModeError::NotPort));
    }
}
