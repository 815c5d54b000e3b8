//! The session Properties carried by the handshake's SessionType action (PROTOCOL.md §3, §5):
//! port forwarding and non-interactive commands. Parse them from the raw text that
//! [`super::Action::SessionType`] keeps.

use super::control::{document_fields, fields, opt_str};
use super::json::{emit_with, JsonStr, Value, Writer};
use super::Error;

/// Properties of a `Port` session. Numbers may arrive as JSON numbers or as strings (SSM
/// document parameters are strings); an empty string reads as absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PortProperties<'a> {
    /// `portNumber`: the port on the target.
    pub port_number: Option<u16>,
    /// `localPortNumber`: where to listen locally (0: pick one and print it).
    pub local_port_number: Option<u16>,
    /// `localUnixSocket`: listen on this unix socket instead.
    pub local_unix_socket: JsonStr<'a>,
    /// `localConnectionType`.
    pub local_connection_type: JsonStr<'a>,
    /// `type`: `LocalPortForwarding` means listen locally; otherwise stdin/stdout.
    pub port_type: JsonStr<'a>,
    /// `host`: the remote host, for forwarding to a host other than the target.
    pub host: JsonStr<'a>,
}

fn port(v: Option<Value<'_>>, key: &'static str) -> Result<Option<u16>, Error> {
    match v {
        None => Ok(None),
        Some(Value::Str(s)) if s.unescaped_len() == 0 => Ok(None),
        Some(v) => u16::try_from(v.i64_or_string(key)?)
            .map(Some)
            .map_err(|_| Error::BadNumber(key)),
    }
}

impl<'a> PortProperties<'a> {
    /// The `type` that means "listen on a local port".
    pub const LOCAL_PORT_FORWARDING: &'static str = "LocalPortForwarding";

    /// Parses Port session Properties (a JSON object).
    ///
    /// # Errors
    /// Malformed JSON, a field of the wrong type, or a port number out of 0..=65535.
    pub fn parse(input: &'a [u8]) -> Result<Self, Error> {
        const KEYS: [&str; 6] = [
            "portNumber",
            "localPortNumber",
            "localUnixSocket",
            "localConnectionType",
            "type",
            "host",
        ];
        let [pn, lpn, sock, ct, ty, host] = document_fields(input, KEYS)?;
        Ok(PortProperties {
            port_number: port(pn, KEYS[0])?,
            local_port_number: port(lpn, KEYS[1])?,
            local_unix_socket: opt_str(sock, KEYS[2])?,
            local_connection_type: opt_str(ct, KEYS[3])?,
            port_type: opt_str(ty, KEYS[4])?,
            host: opt_str(host, KEYS[5])?,
        })
    }

    /// Whether the session listens on a local port (`type` is `LocalPortForwarding`); otherwise
    /// it is a stdin/stdout stream (SSH's ProxyCommand).
    pub fn is_local_port_forwarding(&self) -> bool {
        self.port_type.eq_str(Self::LOCAL_PORT_FORWARDING)
    }

    /// Writes the properties; numbers as strings (as the agent's documents carry them), absent
    /// or empty values omitted.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`].
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, Error> {
        emit_with(buf, |w| {
            w.raw(b"{");
            let mut first = true;
            for (key, v) in [
                ("portNumber", self.port_number),
                ("localPortNumber", self.local_port_number),
            ] {
                if let Some(v) = v {
                    w.key(first, key);
                    first = false;
                    w.raw(b"\"");
                    w.i64(v.into());
                    w.raw(b"\"");
                }
            }
            for (key, v) in [
                ("localUnixSocket", self.local_unix_socket),
                ("localConnectionType", self.local_connection_type),
                ("type", self.port_type),
                ("host", self.host),
            ] {
                if v.unescaped_len() > 0 {
                    w.key(first, key);
                    first = false;
                    v.write(w);
                }
            }
            w.raw(b"}");
        })
    }
}

/// An operating system key of [`CommandProperties`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Os {
    /// `linux`.
    Linux,
    /// `windows`.
    Windows,
    /// `macos`.
    MacOs,
}

impl Os {
    /// The JSON key.
    pub const fn as_str(&self) -> &'static str {
        match self {
            Os::Linux => "linux",
            Os::Windows => "windows",
            Os::MacOs => "macos",
        }
    }
}

/// The per-OS properties of an `InteractiveCommands` / `NonInteractiveCommands` session
/// (`agent/session/contracts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct CommandProperties<'a> {
    /// `linux`.
    pub linux: Option<OsCommandProperties<'a>>,
    /// `windows`.
    pub windows: Option<OsCommandProperties<'a>>,
    /// `macos`.
    pub macos: Option<OsCommandProperties<'a>>,
}

/// The properties for one OS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct OsCommandProperties<'a> {
    /// `commands`: the command line (often holds escapes: use [`JsonStr::unescape`]).
    pub commands: JsonStr<'a>,
    /// `runAsElevated`.
    pub run_as_elevated: bool,
    /// `separateOutputStream` (a bool or a string such as `"true"`): stdout as Output, stderr
    /// as StdErr, then an exit code.
    pub separate_output_stream: bool,
    /// `stdOutSeparatorPrefix`, matching `^[0-9a-zA-Z\r\n_:-]{0,30}$`.
    pub stdout_separator_prefix: JsonStr<'a>,
    /// `stdErrSeparatorPrefix`, same rule.
    pub stderr_separator_prefix: JsonStr<'a>,
}

/// A bool, or a string in Go's `strconv.ParseBool` set (empty reads as false).
fn loose_bool(v: Option<Value<'_>>, key: &'static str) -> Result<bool, Error> {
    match v {
        None => Ok(false),
        Some(Value::Str(s)) => {
            let (a, n) = s.to_array::<8>().map_err(|_| Error::BadValue(key))?;
            match &a[..n] {
                b"" | b"0" | b"f" | b"F" | b"false" | b"FALSE" | b"False" => Ok(false),
                b"1" | b"t" | b"T" | b"true" | b"TRUE" | b"True" => Ok(true),
                _ => Err(Error::BadValue(key)),
            }
        }
        Some(v) => v.bool(key),
    }
}

fn prefix<'a>(v: Option<Value<'a>>, key: &'static str) -> Result<JsonStr<'a>, Error> {
    let s = opt_str(v, key)?;
    let ok = s.chars().count() <= 30
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '\r' | '\n' | '_' | ':' | '-'));
    if ok {
        Ok(s)
    } else {
        Err(Error::BadValue(key))
    }
}

impl<'a> OsCommandProperties<'a> {
    const KEYS: [&'static str; 5] = [
        "commands",
        "runAsElevated",
        "separateOutputStream",
        "stdOutSeparatorPrefix",
        "stdErrSeparatorPrefix",
    ];

    fn from_value(v: Value<'a>, os: &'static str) -> Result<Self, Error> {
        let k = Self::KEYS;
        let ([c, e, s, o, r], _) = fields(v.object(os)?, k)?;
        Ok(OsCommandProperties {
            commands: opt_str(c, k[0])?,
            run_as_elevated: e.map_or(Ok(false), |e| e.bool(k[1]))?,
            separate_output_stream: loose_bool(s, k[2])?,
            stdout_separator_prefix: prefix(o, k[3])?,
            stderr_separator_prefix: prefix(r, k[4])?,
        })
    }

    fn write(&self, w: &mut Writer<'_>) {
        let k = Self::KEYS;
        w.raw(b"{");
        w.key(true, k[0]);
        self.commands.write(w);
        w.key(false, k[1]);
        w.bool(self.run_as_elevated);
        w.key(false, k[2]);
        w.bool(self.separate_output_stream);
        w.key(false, k[3]);
        self.stdout_separator_prefix.write(w);
        w.key(false, k[4]);
        self.stderr_separator_prefix.write(w);
        w.raw(b"}");
    }
}

impl<'a> CommandProperties<'a> {
    /// Parses command session Properties.
    ///
    /// # Errors
    /// Malformed JSON, a field of the wrong type, or a separator prefix outside the agent's rule.
    pub fn parse(input: &'a [u8]) -> Result<Self, Error> {
        let [l, w, m] = document_fields(input, ["linux", "windows", "macos"])?;
        let os = |v: Option<Value<'a>>, name| v.map(|v| OsCommandProperties::from_value(v, name));
        Ok(CommandProperties {
            linux: os(l, "linux").transpose()?,
            windows: os(w, "windows").transpose()?,
            macos: os(m, "macos").transpose()?,
        })
    }

    /// The properties for `os`.
    pub fn for_os(&self, os: Os) -> Option<OsCommandProperties<'a>> {
        match os {
            Os::Linux => self.linux,
            Os::Windows => self.windows,
            Os::MacOs => self.macos,
        }
    }

    /// Writes the properties (absent OSes omitted).
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`].
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, Error> {
        emit_with(buf, |w| {
            w.raw(b"{");
            let mut first = true;
            for os in [Os::Linux, Os::Windows, Os::MacOs] {
                if let Some(p) = self.for_os(os) {
                    w.key(first, os.as_str());
                    first = false;
                    p.write(w);
                }
            }
            w.raw(b"}");
        })
    }
}
