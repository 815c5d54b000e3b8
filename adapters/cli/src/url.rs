//! Just enough URL handling for endpoints and stream URLs: scheme, host, port, path+query.

use std::net::IpAddr;

/// A parsed `scheme://host[:port][/path][?query]` URL (no user info, no fragment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// Lower-case scheme: `http`, `https`, `ws` or `wss`.
    pub scheme: String,
    /// Host name or IP literal, without IPv6 brackets.
    pub host: String,
    /// Explicit or default port.
    pub port: u16,
    /// Path and query as given, starting with `/`.
    pub path_and_query: String,
}

impl Url {
    /// Parses `s`; `None` if it is not an absolute URL with a known scheme.
    pub fn parse(s: &str) -> Option<Url> {
        let (scheme, rest) = s.split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" | "ws" => 80,
            "https" | "wss" => 443,
            _ => return None,
        };
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(split);
        if authority.contains('@') || authority.is_empty() {
            return None;
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6.split_once(']')?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().ok()?,
                None if after.is_empty() => default_port,
                None => return None,
            };
            (h.to_owned(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_owned(), p.parse().ok()?),
                None => (authority.to_owned(), default_port),
            }
        };
        if host.is_empty() {
            return None;
        }
        let path_and_query = if tail.starts_with('/') {
            tail.to_owned()
        } else {
            format!("/{tail}")
        };
        Some(Url {
            scheme,
            host: host.to_ascii_lowercase(),
            port,
            path_and_query,
        })
    }

    /// Whether the scheme encrypts (`https`, `wss`).
    pub fn is_tls(&self) -> bool {
        self.scheme == "https" || self.scheme == "wss"
    }

    /// Whether the host is this machine: `localhost`, 127.0.0.0/8 or `::1`.
    pub fn is_loopback(&self) -> bool {
        self.host == "localhost"
            || self
                .host
                .parse::<IpAddr>()
                .map(|ip| ip.is_loopback())
                .unwrap_or(false)
    }

    /// `host:port` for messages and for `connect` (IPv6 in brackets). Never includes the query,
    /// which may carry a presigned signature.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The `Host` header value: the port is left out when it is the scheme's default.
    pub fn host_header(&self) -> String {
        let default = if self.is_tls() { 443 } else { 80 };
        if self.port == default {
            if self.host.contains(':') {
                format!("[{}]", self.host)
            } else {
                self.host.clone()
            }
        } else {
            self.authority()
        }
    }

    /// The path without the query.
    pub fn path(&self) -> &str {
        self.path_and_query
            .split_once('?')
            .map_or(self.path_and_query.as_str(), |(p, _)| p)
    }

    /// The query without `?` (empty when there is none).
    pub fn query(&self) -> &str {
        self.path_and_query.split_once('?').map_or("", |(_, q)| q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_endpoints_and_stream_urls() {
        let u = Url::parse("http://127.0.0.1:4566").unwrap();
        assert_eq!(
            (u.scheme.as_str(), u.host.as_str(), u.port),
            ("http", "127.0.0.1", 4566)
        );
        assert_eq!(u.path_and_query, "/");
        assert!(u.is_loopback() && !u.is_tls());

        let u = Url::parse(
            "wss://ssmmessages.us-east-1.amazonaws.com/v1/data-channel/s-1?role=publish_subscribe",
        )
        .unwrap();
        assert_eq!(u.port, 443);
        assert_eq!(u.path(), "/v1/data-channel/s-1");
        assert_eq!(u.query(), "role=publish_subscribe");
        assert_eq!(u.host_header(), "ssmmessages.us-east-1.amazonaws.com");
        assert!(!u.is_loopback() && u.is_tls());

        let u = Url::parse("ws://[::1]:9/x").unwrap();
        assert_eq!(u.host, "::1");
        assert_eq!(u.authority(), "[::1]:9");
        assert!(u.is_loopback());
        assert!(Url::parse("http://LOCALHOST:1").unwrap().is_loopback());
        assert!(Url::parse("http://127.8.9.10").unwrap().is_loopback());
    }

    #[test]
    fn rejects_what_it_cannot_use() {
        for bad in [
            "ftp://x",
            "http://",
            "127.0.0.1:80",
            "http://u:p@host/",
            "http://h:99999",
            "http://[::1",
        ] {
            assert_eq!(Url::parse(bad), None, "{bad}");
        }
        // Not loopback although it mentions it.
        assert!(!Url::parse("http://127.0.0.1.example.com")
            .unwrap()
            .is_loopback());
        assert!(!Url::parse("http://localhost.example.com")
            .unwrap()
            .is_loopback());
    }
}
