//! A small HTTP/1.1 server: the SSM JSON API (POST, `X-Amz-Target: AmazonSSM.*`) and the
//! data-channel WebSocket upgrade, on one connection type (plain TCP or TLS).

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// A parsed request head and its body.
pub(crate) struct Request {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Request {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 1 << 20;

/// Reads one request. `buf` carries bytes already read past the previous request; after
/// return it holds what follows this one (a WebSocket's first frames, a pipelined request).
/// `Ok(None)` at a clean EOF between requests.
pub(crate) async fn read_request<S: AsyncRead + Unpin>(
    s: &mut S,
    buf: &mut Vec<u8>,
) -> io::Result<Option<Request>> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(buf) {
            Ok(httparse::Status::Complete(head_len)) => {
                let method = req.method.unwrap_or("").to_string();
                let path = req.path.unwrap_or("").to_string();
                let headers: Vec<(String, String)> = req
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_string(),
                            String::from_utf8_lossy(h.value).trim().to_string(),
                        )
                    })
                    .collect();
                let len = headers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                    .and_then(|(_, v)| v.parse::<usize>().ok())
                    .unwrap_or(0);
                if len > MAX_BODY {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "body too large"));
                }
                buf.drain(..head_len);
                while buf.len() < len {
                    let mut chunk = [0u8; 8192];
                    let n = s.read(&mut chunk).await?;
                    if n == 0 {
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let body = buf.drain(..len).collect();
                return Ok(Some(Request {
                    method,
                    path,
                    headers,
                    body,
                }));
            }
            Ok(httparse::Status::Partial) => {
                if buf.len() > MAX_HEAD {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "head too large"));
                }
                let mut chunk = [0u8; 8192];
                let n = s.read(&mut chunk).await?;
                if n == 0 {
                    return if buf.is_empty() {
                        Ok(None)
                    } else {
                        Err(io::ErrorKind::UnexpectedEof.into())
                    };
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Error",
    }
}

/// Writes a complete response with a body.
pub(crate) async fn respond<S: AsyncWrite + Unpin>(
    s: &mut S,
    status: u16,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<()> {
    let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    // AWS dates every answer; clients without a clock learn the time from it.
    head.push_str(&format!(
        "Date: {}\r\n",
        http_date(std::time::SystemTime::now())
    ));
    for (n, v) in headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    s.write_all(head.as_bytes()).await?;
    s.write_all(body).await?;
    s.flush().await
}

/// An IMF-fixdate (RFC 9110 §5.6.7): `Tue, 01 Dec 2026 22:01:46 GMT`.
pub(crate) fn http_date(t: std::time::SystemTime) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // `YYYYMMDDTHHMMSSZ`; the weekday from the day count (1970-01-01 was a Thursday).
    let Ok(d) = ssm_proto::sigv4::AmzDate::from_unix_secs(secs) else {
        return "Thu, 01 Jan 1970 00:00:00 GMT".into();
    };
    let d = d.as_str();
    let month = d[4..6].parse::<usize>().unwrap_or(1).clamp(1, 12);
    format!(
        "{}, {} {} {} {}:{}:{} GMT",
        DAYS[(secs / 86_400 % 7) as usize],
        &d[6..8],
        MONTHS[month - 1],
        &d[0..4],
        &d[9..11],
        &d[11..13],
        &d[13..15]
    )
}

/// Answers a WebSocket upgrade with 101; `None` if the request is not a valid upgrade.
pub(crate) async fn accept_upgrade<S: AsyncWrite + Unpin>(
    s: &mut S,
    req: &Request,
) -> io::Result<Option<()>> {
    let is_upgrade = req
        .header("upgrade")
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let Some(key) = req.header("sec-websocket-key").filter(|_| is_upgrade) else {
        return Ok(None);
    };
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let head = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await?;
    s.flush().await?;
    Ok(Some(()))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn http_dates_are_imf_fixdates() {
        let at = |s| UNIX_EPOCH + Duration::from_secs(s);
        assert_eq!(
            super::http_date(at(784_111_777)),
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
        assert_eq!(super::http_date(at(0)), "Thu, 01 Jan 1970 00:00:00 GMT");
        for s in [951_868_799, 1_796_162_506, 4_102_444_800] {
            let text = super::http_date(at(s));
            assert_eq!(
                ssm_proto::api::http::parse_http_date(&text),
                Some(s),
                "{text}"
            );
        }
    }
}
