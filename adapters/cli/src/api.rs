//! The few SSM JSON API calls a client makes (`StartSession`, `ResumeSession`,
//! `TerminateSession`): AWS JSON 1.1 over HTTP/1.1, SigV4-signed when credentials exist.
//!
//! One request per connection (`Connection: close`), bounded in size and time. Plain `http://`
//! is what `aws --endpoint-url http://127.0.0.1:PORT` and the local emulator use; `https://` goes
//! through rustls with the roots the caller configured.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::exit::{unreachable, Failure, Kind, Result};
use crate::sigv4::{self, Credentials};
use crate::url::Url;
use crate::Token;

/// How long one API call may take, connect to last byte.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest response accepted; the answers here are a few hundred bytes.
const MAX_RESPONSE: usize = 1 << 20;

/// What `StartSession` and `ResumeSession` return: where and how to open the data channel.
#[derive(Debug, Clone)]
pub struct Grant {
    /// The session id (also in the stream URL's path).
    pub session_id: String,
    /// The `wss://` (or, for a local endpoint, `ws://`) data-channel URL.
    pub stream_url: String,
    /// The `TokenValue`, redacted in `Debug`.
    pub token: Token,
}

impl Grant {
    /// Reads a `StartSession`/`ResumeSession` response object (extra keys are ignored).
    ///
    /// # Errors
    /// [`Kind::Usage`] when a field is missing or not a string.
    pub fn from_json(v: &Value) -> Result<Grant> {
        let field = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .ok_or_else(|| {
                    Failure::new(Kind::Usage, format!("session response has no {k} string"))
                })
        };
        Ok(Grant {
            session_id: field("SessionId")?,
            stream_url: field("StreamUrl")?,
            token: Token::new(field("TokenValue")?),
        })
    }
}

impl Grant {
    /// Checks the answer with the protocol model: a valid session id, a data-channel URL for that
    /// session, a well-formed token. Only a local endpoint (`local_endpoint`: the emulator) may
    /// point at a host other than AWS's `ssmmessages` endpoints; otherwise whoever wrote the
    /// response could send the token anywhere.
    ///
    /// # Errors
    /// [`Kind::Usage`] with the model's reason (which never quotes the URL or the token).
    pub fn validate(&self, local_endpoint: bool) -> Result<()> {
        use ssm_proto::model::{Endpoints, StartSessionResponse};
        let policy = if local_endpoint {
            Endpoints::DangerousAnyHost
        } else {
            Endpoints::Aws
        };
        StartSessionResponse::new(
            &self.session_id,
            &self.stream_url,
            self.token.expose(),
            policy,
        )
        .map(drop)
        .map_err(|e| Failure::new(Kind::Usage, format!("unusable session response: {e}")))
    }
}

/// A client for one SSM endpoint.
#[derive(Debug, Clone)]
pub struct SsmClient {
    endpoint: Url,
    region: String,
    credentials: Option<Credentials>,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl SsmClient {
    /// A client for `endpoint` in `region`; `tls` is required for `https://` endpoints.
    pub fn new(
        endpoint: Url,
        region: impl Into<String>,
        credentials: Option<Credentials>,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Self {
        SsmClient {
            endpoint,
            region: region.into(),
            credentials,
            tls,
        }
    }

    /// The default public endpoint of `region`.
    pub fn default_endpoint(region: &str) -> String {
        if region.starts_with("cn-") {
            format!("https://ssm.{region}.amazonaws.com.cn")
        } else {
            format!("https://ssm.{region}.amazonaws.com")
        }
    }

    /// `StartSession` with the request parameters object (`Target`, `DocumentName`, `Parameters`).
    ///
    /// # Errors
    /// See [`SsmClient::call`].
    pub async fn start_session(&self, request: &Value) -> Result<Grant> {
        Grant::from_json(&self.call("StartSession", request).await?)
    }

    /// `ResumeSession`: a fresh token (and URL) for an existing session.
    ///
    /// # Errors
    /// See [`SsmClient::call`].
    pub async fn resume_session(&self, session_id: &str) -> Result<Grant> {
        let v = self
            .call("ResumeSession", &json!({ "SessionId": session_id }))
            .await?;
        Grant::from_json(&v)
    }

    /// `TerminateSession`.
    ///
    /// # Errors
    /// See [`SsmClient::call`].
    pub async fn terminate_session(&self, session_id: &str) -> Result<()> {
        self.call("TerminateSession", &json!({ "SessionId": session_id }))
            .await
            .map(drop)
    }

    /// Calls `AmazonSSM.<operation>` with `body` and returns the response object.
    ///
    /// # Errors
    /// [`Kind::Unreachable`] (no connection, timeout), [`Kind::Tls`], [`Kind::Auth`] (the service
    /// rejected the credentials or signature), [`Kind::Api`] (any other error answer or a
    /// malformed one).
    pub async fn call(&self, operation: &str, body: &Value) -> Result<Value> {
        let what = self.endpoint.authority();
        match tokio::time::timeout(CALL_TIMEOUT, self.call_inner(operation, body)).await {
            Ok(r) => r,
            Err(_) => Err(Failure::new(
                Kind::Unreachable,
                format!(
                    "{operation} at {what} timed out after {}s",
                    CALL_TIMEOUT.as_secs()
                ),
            )),
        }
    }

    async fn call_inner(&self, operation: &str, body: &Value) -> Result<Value> {
        let payload = body.to_string();
        let request = self.build_request(operation, payload.as_bytes());
        let what = self.endpoint.authority();
        let tcp = TcpStream::connect(&what)
            .await
            .map_err(|e| unreachable(&what, &e))?;
        let raw = if self.endpoint.is_tls() {
            let config = self.tls.clone().ok_or_else(|| {
                Failure::new(Kind::Tls, "no tls configuration for an https endpoint")
            })?;
            let name = rustls_pki_types::ServerName::try_from(self.endpoint.host.clone())
                .map_err(|_| Failure::new(Kind::Usage, format!("bad host name in {what}")))?;
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await
                .map_err(|e| Failure::new(Kind::Tls, format!("tls failure with {what}: {e}")))?;
            exchange(tls, &request).await
        } else {
            exchange(tcp, &request).await
        }
        .map_err(|e| Failure::new(Kind::Unreachable, format!("{operation} at {what}: {e}")))?;
        let (status, body) = parse_response(&raw)
            .map_err(|e| Failure::new(Kind::Api, format!("{operation} at {what}: {e}")))?;
        let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if (200..300).contains(&status) {
            if value.is_object() {
                return Ok(value);
            }
            return Err(Failure::new(
                Kind::Api,
                format!("{operation} at {what}: response is not a json object"),
            ));
        }
        Err(api_error(operation, status, &value))
    }

    fn build_request(&self, operation: &str, payload: &[u8]) -> Vec<u8> {
        let target = format!("AmazonSSM.{operation}");
        let host = self.endpoint.host_header();
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let date = sigv4::amz_date(unix);
        let mut headers: Vec<(&str, &str)> = vec![
            ("content-type", "application/x-amz-json-1.1"),
            ("host", &host),
            ("x-amz-date", &date),
            ("x-amz-target", &target),
        ];
        if let Some(t) = self
            .credentials
            .as_ref()
            .and_then(|c| c.session_token.as_deref())
        {
            headers.push(("x-amz-security-token", t));
        }
        let auth = self.credentials.as_ref().map(|c| {
            sigv4::authorization(
                c,
                &self.region,
                "ssm",
                &date,
                &sigv4::Request {
                    method: "POST",
                    path: self.endpoint.path(),
                    query: self.endpoint.query(),
                    headers: &headers,
                    payload,
                },
            )
        });
        let mut head = format!("POST {} HTTP/1.1\r\n", self.endpoint.path_and_query);
        for (k, v) in &headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if let Some(a) = auth {
            head.push_str(&format!("authorization: {a}\r\n"));
        }
        head.push_str(&format!(
            "user-agent: ssm-session/{}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            env!("CARGO_PKG_VERSION"),
            payload.len()
        ));
        let mut out = head.into_bytes();
        out.extend_from_slice(payload);
        out
    }
}

/// Maps an error answer to a failure, using the AWS error type (`__type`) and message.
fn api_error(operation: &str, status: u16, v: &Value) -> Failure {
    let kind_name = v
        .get("__type")
        .and_then(Value::as_str)
        .map(|t| t.rsplit('#').next().unwrap_or(t))
        .unwrap_or("");
    let message = v
        .get("message")
        .or_else(|| v.get("Message"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let auth = matches!(status, 401 | 403)
        || matches!(
            kind_name,
            "AccessDeniedException"
                | "UnrecognizedClientException"
                | "InvalidSignatureException"
                | "ExpiredTokenException"
                | "MissingAuthenticationTokenException"
                | "IncompleteSignatureException"
        );
    let detail = match (kind_name.is_empty(), message.is_empty()) {
        (false, false) => format!("{kind_name}: {message}"),
        (false, true) => kind_name.to_owned(),
        (true, false) => message.to_owned(),
        (true, true) => "no details".to_owned(),
    };
    let kind = if auth { Kind::Auth } else { Kind::Api };
    Failure::new(
        kind,
        format!("{operation} failed (http {status}): {detail}"),
    )
}

/// Writes `request`, reads the whole answer (until the body is complete or EOF).
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    request: &[u8],
) -> std::io::Result<Vec<u8>> {
    s.write_all(request).await?;
    s.flush().await?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        if response_complete(&buf) {
            break;
        }
        let n = match s.read(&mut chunk).await {
            Ok(n) => n,
            // A TLS peer that closes without close_notify after a complete answer is fine.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !buf.is_empty() => 0,
            Err(e) => return Err(e),
        };
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > MAX_RESPONSE {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "response too large",
            ));
        }
    }
    Ok(buf)
}

/// Splits a raw answer into head and body offset.
fn head_end(raw: &[u8]) -> Option<usize> {
    raw.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

fn response_complete(raw: &[u8]) -> bool {
    let Some(end) = head_end(raw) else {
        return false;
    };
    let head = String::from_utf8_lossy(&raw[..end]);
    if let Some(len) = header(&head, "content-length").and_then(|v| v.parse::<usize>().ok()) {
        return raw.len() >= end + len;
    }
    if header(&head, "transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        return dechunk(&raw[end..]).is_some();
    }
    false
}

/// Decodes a complete chunked body; `None` while incomplete or malformed.
fn dechunk(mut body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&body[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        if body.len() < size + 2 {
            return None;
        }
        out.extend_from_slice(&body[..size]);
        body = &body[size + 2..];
    }
}

/// Status code and body of a raw HTTP/1.1 answer.
fn parse_response(raw: &[u8]) -> core::result::Result<(u16, Vec<u8>), String> {
    let end = head_end(raw).ok_or("incomplete http response")?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or("malformed http status line")?;
    let body = &raw[end..];
    let body = if header(&head, "transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        dechunk(body).ok_or("malformed chunked body")?
    } else if let Some(len) = header(&head, "content-length").and_then(|v| v.parse::<usize>().ok())
    {
        body.get(..len).ok_or("truncated http body")?.to_vec()
    } else {
        body.to_vec()
    };
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_with_length_and_chunks() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
        assert!(response_complete(raw));
        assert_eq!(parse_response(raw).unwrap(), (200, b"{}".to_vec()));
        assert!(!response_complete(
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n{}"
        ));
        let raw = b"HTTP/1.1 400 Bad\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        assert!(response_complete(raw));
        assert_eq!(parse_response(raw).unwrap(), (400, b"abcde".to_vec()));
        assert!(parse_response(b"garbage").is_err());
    }

    #[test]
    fn error_answers_are_classified() {
        let v = json!({"__type": "com.amazonaws#ExpiredTokenException", "message": "expired"});
        let f = api_error("ResumeSession", 400, &v);
        assert_eq!(f.kind, Kind::Auth);
        assert_eq!(
            f.message,
            "ResumeSession failed (http 400): ExpiredTokenException: expired"
        );
        let v = json!({"__type": "TargetNotConnected", "Message": "i-1 is not connected"});
        assert_eq!(api_error("StartSession", 400, &v).kind, Kind::Api);
        assert_eq!(
            api_error("StartSession", 403, &Value::Null).kind,
            Kind::Auth
        );
    }

    #[test]
    fn grant_needs_all_fields_and_hides_the_token() {
        let g = Grant::from_json(
            &json!({"SessionId": "s", "StreamUrl": "wss://h/", "TokenValue": "tok-secret"}),
        )
        .unwrap();
        assert!(!format!("{g:?}").contains("tok-secret"));
        assert_eq!(g.token.expose(), "tok-secret");
        let e = Grant::from_json(&json!({"SessionId": "s", "StreamUrl": "wss://h/"})).unwrap_err();
        assert_eq!(e.message, "session response has no TokenValue string");
    }

    #[test]
    fn only_local_endpoints_may_point_elsewhere() {
        let grant = |url: &str| Grant {
            session_id: "s-1".into(),
            stream_url: url.into(),
            token: Token::new("tok"),
        };
        let aws = grant(
            "wss://ssmmessages.eu-west-1.amazonaws.com/v1/data-channel/s-1?role=publish_subscribe",
        );
        assert!(aws.validate(false).is_ok() && aws.validate(true).is_ok());
        let local = grant("ws://127.0.0.1:4566/v1/data-channel/s-1?role=publish_subscribe");
        assert!(local.validate(true).is_ok());
        let e = local.validate(false).unwrap_err();
        assert_eq!(e.kind, Kind::Usage);
        assert!(!e.message.contains("127.0.0.1"), "{e}");
        let evil = grant("wss://attacker.example/v1/data-channel/s-1");
        assert!(evil.validate(false).is_err());
        // The path must name the session.
        assert!(grant("ws://127.0.0.1:1/v1/data-channel/other")
            .validate(true)
            .is_err());
    }

    #[tokio::test]
    async fn signed_call_against_a_loopback_server() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 8192];
            let mut got = Vec::new();
            // A request has the same framing as a response: read until it is complete.
            while !response_complete(&got) {
                let n = s.read(&mut buf).await.unwrap();
                assert!(n > 0, "client closed early");
                got.extend_from_slice(&buf[..n]);
            }
            let body = br#"{"SessionId":"s-1","StreamUrl":"ws://127.0.0.1:1/v1/data-channel/s-1","TokenValue":"t2"}"#;
            let answer = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
            s.write_all(answer.as_bytes()).await.unwrap();
            s.write_all(body).await.unwrap();
            String::from_utf8(got).unwrap()
        });
        let creds = Credentials {
            access_key_id: "AKID".into(),
            secret_access_key: "SECRET".into(),
            session_token: Some("SESSION".into()),
        };
        let client = SsmClient::new(
            Url::parse(&format!("http://127.0.0.1:{port}")).unwrap(),
            "us-east-1",
            Some(creds),
            None,
        );
        let g = client.resume_session("s-1").await.unwrap();
        assert_eq!(g.session_id, "s-1");
        assert_eq!(g.token.expose(), "t2");
        let req = server.await.unwrap();
        assert!(req.starts_with("POST / HTTP/1.1\r\n"), "{req}");
        assert!(req.contains("x-amz-target: AmazonSSM.ResumeSession\r\n"));
        assert!(req.contains("x-amz-security-token: SESSION\r\n"));
        assert!(req.contains("authorization: AWS4-HMAC-SHA256 Credential=AKID/"));
        assert!(req.contains("/us-east-1/ssm/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target, Signature="));
        assert!(!req.contains("SECRET"));
        assert!(req.ends_with(r#"{"SessionId":"s-1"}"#));
    }

    #[tokio::test]
    async fn refused_connection_is_unreachable() {
        // Bind then drop: the port is very likely closed right after.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let client = SsmClient::new(
            Url::parse(&format!("http://127.0.0.1:{port}")).unwrap(),
            "us-east-1",
            None,
            None,
        );
        let e = client.terminate_session("s").await.unwrap_err();
        assert_eq!(e.kind, Kind::Unreachable, "{e}");
        assert!(
            e.message
                .starts_with(&format!("cannot reach 127.0.0.1:{port}")),
            "{e}"
        );
    }
}
