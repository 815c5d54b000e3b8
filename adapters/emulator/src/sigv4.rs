//! Strict mode: SigV4 verification of API calls and WebSocket upgrades, as AWS checks them.
//!
//! The signature is recomputed with the core's primitives (`ssm_proto::sigv4::{signing_key,
//! hmac_sha256}`) from the request as received: canonical request, string to sign, signature.
//! Failures carry AWS's error type and message, so a client's error handling is exercised.

use sha2::{Digest, Sha256};

use super::http::Request;

/// How far a request's `X-Amz-Date` may be from the emulator's clock (AWS: 5 minutes).
const MAX_SKEW_SECS: u64 = 5 * 60;

/// The keys the emulator accepts. `Debug` shows the key id only.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// Session token that must come along (`x-amz-security-token`), if any.
    pub session_token: Option<String>,
}

impl Credentials {
    /// Parses `AKID:SECRET[:TOKEN]` (the CLI's `--credentials`).
    ///
    /// # Errors
    /// A static description when a part is missing or empty.
    pub fn parse(s: &str) -> Result<Credentials, &'static str> {
        let mut it = s.splitn(3, ':');
        let id = it.next().filter(|p| !p.is_empty());
        let secret = it.next().filter(|p| !p.is_empty());
        match (id, secret) {
            (Some(id), Some(secret)) => Ok(Credentials {
                access_key_id: id.into(),
                secret_access_key: secret.into(),
                session_token: it.next().filter(|t| !t.is_empty()).map(str::to_owned),
            }),
            _ => Err("credentials must be AKID:SECRET or AKID:SECRET:TOKEN"),
        }
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// Why a request was refused: AWS's `__type`, message and HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) status: u16,
    pub(crate) kind: &'static str,
    pub(crate) message: String,
}

fn refuse(status: u16, kind: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        status,
        kind,
        message: message.into(),
    }
}

/// Checks `req`'s `Authorization` header for `service` against the known `keys`, at `now` (Unix
/// seconds).
pub(crate) fn verify(
    req: &Request,
    service: &str,
    keys: &[Credentials],
    now: u64,
) -> Result<(), Refusal> {
    let Some(auth) = req.header("authorization") else {
        return Err(refuse(
            403,
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        ));
    };
    let incomplete = |what: &str| {
        refuse(
            400,
            "IncompleteSignatureException",
            format!("Authorization header requires '{what}' parameter."),
        )
    };
    let rest = auth.strip_prefix("AWS4-HMAC-SHA256 ").ok_or_else(|| {
        refuse(
            400,
            "IncompleteSignatureException",
            "Unsupported algorithm.",
        )
    })?;
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        match part.trim().split_once('=') {
            Some(("Credential", v)) => credential = Some(v),
            Some(("SignedHeaders", v)) => signed = Some(v),
            Some(("Signature", v)) => signature = Some(v),
            _ => {}
        }
    }
    let credential = credential.ok_or_else(|| incomplete("Credential"))?;
    let signed = signed.ok_or_else(|| incomplete("SignedHeaders"))?;
    let signature = signature.ok_or_else(|| incomplete("Signature"))?;
    let scope: Vec<&str> = credential.split('/').collect();
    let [key_id, date, region, scope_service, terminator] = scope[..] else {
        return Err(incomplete("Credential"));
    };
    let Some(creds) = keys.iter().find(|k| k.access_key_id == key_id) else {
        return Err(refuse(
            400,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        ));
    };
    let amz_date = req
        .header("x-amz-date")
        .ok_or_else(|| incomplete("X-Amz-Date"))?;
    let Some(when) = parse_amz_date(amz_date) else {
        return Err(refuse(
            400,
            "IncompleteSignatureException",
            format!("Date must be in ISO-8601 'basic format'. Got '{amz_date}'."),
        ));
    };
    if when.abs_diff(now) > MAX_SKEW_SECS {
        return Err(refuse(
            400,
            "InvalidSignatureException",
            format!(
                "Signature expired: {amz_date} is now earlier or later than the allowed 5 minutes."
            ),
        ));
    }
    if !amz_date.starts_with(date) || date.len() != 8 {
        return Err(refuse(
            400,
            "InvalidSignatureException",
            format!("Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{date}' != '{}'", &amz_date[..8]),
        ));
    }
    if scope_service != service || terminator != "aws4_request" {
        return Err(refuse(
            400,
            "InvalidSignatureException",
            format!("Credential should be scoped to correct service: '{service}'."),
        ));
    }
    if let Some(expected) = &creds.session_token {
        if req.header("x-amz-security-token") != Some(expected.as_str()) {
            return Err(refuse(
                400,
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            ));
        }
    }
    let names: Vec<&str> = signed.split(';').collect();
    if !names.contains(&"host") {
        return Err(refuse(
            400,
            "InvalidSignatureException",
            "'Host' must be a 'SignedHeader' in the AWS Authorization.",
        ));
    }
    let canonical = canonical_request(req, &names)?;
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{date}/{region}/{service}/aws4_request\n{}",
        hex(&Sha256::digest(canonical.as_bytes()))
    );
    let key = ssm_proto::sigv4::signing_key(&creds.secret_access_key, date, region, service);
    let expected = hex(&ssm_proto::sigv4::hmac_sha256(&[&key], to_sign.as_bytes()));
    if !constant_time_eq(expected.as_bytes(), signature.as_bytes()) {
        return Err(refuse(
            403,
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided. \
             Check your AWS Secret Access Key and signing method. Consult the service \
             documentation for details.",
        ));
    }
    Ok(())
}

/// The SigV4 canonical request of `req` over the `signed` headers.
fn canonical_request(req: &Request, signed: &[&str]) -> Result<String, Refusal> {
    let (path, query) = req.path.split_once('?').unwrap_or((&req.path, ""));
    let mut params: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (encode(&decode(k)), encode(&decode(v)))
        })
        .collect();
    params.sort();
    let query = params
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let mut headers = String::new();
    for name in signed {
        let values: Vec<String> = req
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        if values.is_empty() {
            return Err(refuse(
                400,
                "InvalidSignatureException",
                format!("Signed header {name} is missing from the request."),
            ));
        }
        headers.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    let payload = req
        .header("x-amz-content-sha256")
        .map_or_else(|| hex(&Sha256::digest(&req.body)), str::to_owned);
    let path = path
        .split('/')
        .map(|seg| encode(&decode(seg)))
        .collect::<Vec<_>>()
        .join("/");
    // AWS services other than S3 encode the path twice.
    let path = path.split('/').map(encode).collect::<Vec<_>>().join("/");
    Ok(format!(
        "{}\n{}\n{query}\n{headers}\n{}\n{payload}",
        req.method,
        if path.is_empty() { "/" } else { &path },
        signed.join(";")
    ))
}

/// `YYYYMMDDTHHMMSSZ` as Unix seconds.
fn parse_amz_date(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: core::ops::Range<usize>| s.get(r)?.parse::<u64>().ok();
    let (y, m, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hh, mm, ss) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Days from civil (proleptic Gregorian), as in Howard Hinnant's algorithm.
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y / 400;
    let yoe = y % 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = (era * 146_097 + doe).checked_sub(719_468)?;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// RFC 3986 percent-encoding of everything but the unreserved characters (SigV4's rule).
/// Decodes an `application/x-www-form-urlencoded` value (`+` is a space).
pub(crate) fn form_decode(s: &str) -> String {
    decode(&s.replace('+', " "))
}

/// Unix seconds as ISO 8601 (`2026-12-01T23:00:00Z`), as STS writes expirations.
pub(crate) fn iso8601(unix: u64) -> String {
    let d = ssm_proto::sigv4::AmzDate::from_unix_secs(unix)
        .map(|d| d.as_str().to_owned())
        .unwrap_or_else(|_| "99991231T235959Z".into());
    format!(
        "{}-{}-{}T{}:{}:{}Z",
        &d[0..4],
        &d[4..6],
        &d[6..8],
        &d[9..11],
        &d[11..13],
        &d[13..15]
    )
}

fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &c in s.as_bytes() {
        if c.is_ascii_alphanumeric() || b"-_.~".contains(&c) {
            out.push(char::from(c));
        } else {
            out.push_str(&format!("%{c:02X}"));
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AWS's published SigV4 example (the `iam` ListUsers GET of the SigV4 documentation).
    #[test]
    fn accepts_the_documented_example_and_refuses_changes() {
        let creds = Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
        };
        let req = |sig: &str| {
            Request {
            method: "GET".into(),
            path: "/?Action=ListUsers&Version=2010-05-08".into(),
            headers: vec![
                ("Host".into(), "iam.amazonaws.com".into()),
                (
                    "Content-Type".into(),
                    "application/x-www-form-urlencoded; charset=utf-8".into(),
                ),
                ("X-Amz-Date".into(), "20150830T123600Z".into()),
                (
                    "Authorization".into(),
                    format!("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature={sig}"),
                ),
            ],
            body: Vec::new(),
        }
        };
        let good = "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7";
        let now = parse_amz_date("20150830T123600Z").unwrap();
        assert_eq!(now, 1_440_938_160);
        let keys = [creds.clone()];
        assert_eq!(verify(&req(good), "iam", &keys, now), Ok(()));
        let bad = verify(&req(&good.replace('5', "6")), "iam", &keys, now).unwrap_err();
        assert_eq!(bad.kind, "InvalidSignatureException");
        let late = verify(&req(good), "iam", &keys, now + 301).unwrap_err();
        assert!(late.message.starts_with("Signature expired"), "{late:?}");
        let wrong_service = verify(&req(good), "ssm", &keys, now).unwrap_err();
        assert!(wrong_service.message.contains("'ssm'"), "{wrong_service:?}");
        let other_key = Credentials {
            access_key_id: "AKIDOTHER".into(),
            ..creds.clone()
        };
        assert_eq!(
            verify(&req(good), "iam", &[other_key], now)
                .unwrap_err()
                .kind,
            "UnrecognizedClientException"
        );
        let with_token = Credentials {
            session_token: Some("tok".into()),
            ..creds
        };
        assert_eq!(
            verify(&req(good), "iam", &[with_token], now)
                .unwrap_err()
                .kind,
            "UnrecognizedClientException"
        );
    }

    #[test]
    fn unsigned_requests_are_refused() {
        let req = Request {
            method: "POST".into(),
            path: "/".into(),
            headers: vec![("Host".into(), "h".into())],
            body: Vec::new(),
        };
        let creds = Credentials::parse("AKID:SECRET").unwrap();
        let r = verify(&req, "ssm", std::slice::from_ref(&creds), 0).unwrap_err();
        assert_eq!(r.kind, "MissingAuthenticationTokenException");
        assert!(Credentials::parse("AKID").is_err());
        assert_eq!(iso8601(1_440_938_160), "2015-08-30T12:36:00Z");
        assert_eq!(
            Credentials::parse("A:S:T")
                .unwrap()
                .session_token
                .as_deref(),
            Some("T")
        );
        assert!(!format!("{creds:?}").contains("SECRET"));
    }
}
