//! AWS Signature Version 4 (header form, on top of the core's `ssm_proto::sigv4` primitives) for
//! the few JSON API calls the client makes (`ResumeSession`,
//! `TerminateSession`, `StartSession`), and where credentials come from.
//!
//! Credentials: `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN`, else static
//! keys of the profile (argv[4], else `AWS_PROFILE`, else `default`) in the shared credentials
//! file (`AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`). SSO, `credential_process`
//! and role assumption are not implemented: without static keys requests go unsigned, which the
//! local emulator accepts and AWS rejects (reported as an authentication failure).

use std::fmt;

use sha2::{Digest, Sha256};

/// Static AWS credentials. `Debug` never shows the secret or the session token.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// Access key id (not secret).
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// Session token of temporary credentials.
    pub session_token: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// Looks credentials up as described in the module docs; `None` if there are none.
    pub fn discover(profile: &str) -> Option<Credentials> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        if let (Some(id), Some(secret)) = (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
            return Some(Credentials {
                access_key_id: id,
                secret_access_key: secret,
                session_token: env("AWS_SESSION_TOKEN"),
            });
        }
        let profile = if profile.is_empty() {
            env("AWS_PROFILE").unwrap_or_else(|| "default".to_owned())
        } else {
            profile.to_owned()
        };
        let path = env("AWS_SHARED_CREDENTIALS_FILE")
            .or_else(|| env("HOME").map(|h| format!("{h}/.aws/credentials")))?;
        let text = std::fs::read_to_string(path).ok()?;
        from_ini(&text, &profile)
    }
}

/// Reads `[profile]`'s static keys from a credentials file's text.
fn from_ini(text: &str, profile: &str) -> Option<Credentials> {
    let mut in_section = false;
    let (mut id, mut secret, mut token) = (None, None, None);
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_section = name.trim() == profile;
            continue;
        }
        if !in_section {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            let v = v.trim().to_owned();
            match k.trim() {
                "aws_access_key_id" => id = Some(v),
                "aws_secret_access_key" => secret = Some(v),
                "aws_session_token" => token = Some(v),
                _ => {}
            }
        }
    }
    Some(Credentials {
        access_key_id: id?,
        secret_access_key: secret?,
        session_token: token,
    })
}

/// A request to sign: headers are `(lower-case name, value)` and must include `host`.
#[derive(Debug)]
pub struct Request<'a> {
    /// HTTP method.
    pub method: &'a str,
    /// Absolute path, already URI-encoded as sent.
    pub path: &'a str,
    /// Query string as sent, without `?` (its pairs are sorted for signing).
    pub query: &'a str,
    /// Headers to sign.
    pub headers: &'a [(&'a str, &'a str)],
    /// The body.
    pub payload: &'a [u8],
}

/// `YYYYMMDDTHHMMSSZ` for a Unix time in seconds (UTC).
pub fn amz_date(unix_secs: u64) -> String {
    ssm_proto::sigv4::AmzDate::from_unix_secs(unix_secs)
        .map(|d| d.as_str().to_owned())
        .unwrap_or_default()
}

/// The `Authorization` header value for `req`, signed at `amz_date` (`YYYYMMDDTHHMMSSZ`, which
/// must also be the request's `x-amz-date` header).
pub fn authorization(
    creds: &Credentials,
    region: &str,
    service: &str,
    amz_date: &str,
    req: &Request<'_>,
) -> String {
    let mut headers: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.to_ascii_lowercase(),
                v.split_whitespace().collect::<Vec<_>>().join(" "),
            )
        })
        .collect();
    headers.sort();
    let signed: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
    let signed = signed.join(";");
    let mut query: Vec<&str> = req.query.split('&').filter(|p| !p.is_empty()).collect();
    query.sort_unstable();
    let mut canonical = format!("{}\n{}\n{}\n", req.method, req.path, query.join("&"));
    for (k, v) in &headers {
        canonical.push_str(&format!("{k}:{v}\n"));
    }
    canonical.push_str(&format!(
        "\n{signed}\n{}",
        hex::encode(Sha256::digest(req.payload))
    ));

    let date = &amz_date[..8];
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let key = ssm_proto::sigv4::signing_key(&creds.secret_access_key, date, region, service);
    let signature = hex::encode(ssm_proto::sigv4::hmac_sha256(&[&key], to_sign.as_bytes()));
    format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed}, Signature={signature}",
        creds.access_key_id
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> Credentials {
        // The key pair of AWS's published SigV4 test suite (not a real credential).
        Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
        }
    }

    #[test]
    fn aws_test_suite_get_vanilla() {
        let auth = authorization(
            &example(),
            "us-east-1",
            "service",
            "20150830T123600Z",
            &Request {
                method: "GET",
                path: "/",
                query: "",
                headers: &[
                    ("host", "example.amazonaws.com"),
                    ("x-amz-date", "20150830T123600Z"),
                ],
                payload: b"",
            },
        );
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }

    #[test]
    fn dates() {
        assert_eq!(amz_date(0), "19700101T000000Z");
        assert_eq!(amz_date(1_440_938_160), "20150830T123600Z");
        assert_eq!(amz_date(951_782_400), "20000229T000000Z");
    }

    #[test]
    fn credentials_file_profiles() {
        let text = "[default]\naws_access_key_id = A\naws_secret_access_key = S\n\n\
                    [dev]\naws_access_key_id=B\naws_secret_access_key=T\naws_session_token=X\n";
        assert_eq!(from_ini(text, "default").unwrap().access_key_id, "A");
        let dev = from_ini(text, "dev").unwrap();
        assert_eq!(dev.session_token.as_deref(), Some("X"));
        assert!(from_ini(text, "none").is_none());
        let shown = format!("{dev:?}");
        assert!(!shown.contains("secret_access_key") && !shown.contains("\"X\""));
    }
}
