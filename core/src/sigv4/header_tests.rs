//! Header-signing vectors from botocore 1.44 `SigV4Auth` (`gen_vectors.py`, signing time fixed):
//! JSON API calls (service `ssm`) and the WebSocket upgrade GET (service `ssmmessages`).

use std::format;
use std::string::String;
use std::vec;

use super::*;
use crate::sigv4::{hmac_sha256, signing_key};

include!("header_vectors.rs");

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn creds(token: Option<&'static str>) -> Credentials<'static> {
    Credentials {
        access_key_id: AKID,
        secret_access_key: SECRET,
        session_token: token,
    }
}

fn sig(auth: &str) -> &str {
    auth.split("Signature=").nth(1).unwrap()
}

/// botocore's canonical request, signed by hand, gives botocore's signature: the vector is
/// self-consistent, so a mismatch below is ours.
fn check_vector(canonical: &str, unix_secs: u64, region: &str, service: &str, auth: &str) {
    let date = AmzDate::from_unix_secs(unix_secs).unwrap();
    let sts = format!(
        "{ALGORITHM}\n{}\n{}/{region}/{service}/aws4_request\n{}",
        date.as_str(),
        date.date(),
        hex(&Sha256::digest(canonical.as_bytes()))
    );
    let key = signing_key(SECRET, date.date(), region, service);
    assert_eq!(hex(&hmac_sha256(&[&key], sts.as_bytes())), sig(auth));
}

#[test]
fn botocore_json_api_vectors() {
    for v in &API {
        check_vector(
            v.canonical_request,
            v.unix_secs,
            v.region,
            "ssm",
            v.authorization,
        );
        assert_eq!(hex(&Sha256::digest(v.body.as_bytes())), v.body_sha256);
        let mut out = [0u8; 512];
        let s = sign_json_request(
            v.host,
            v.region,
            v.target,
            v.body.as_bytes(),
            &creds(v.session_token),
            v.unix_secs,
            &mut out,
        )
        .unwrap();
        assert_eq!(
            s.authorization, v.authorization,
            "canonical request expected:\n{}",
            v.canonical_request
        );
        assert_eq!(s.amz_date.as_str(), v.amz_date);
    }
}

#[test]
fn botocore_upgrade_vectors() {
    for v in &UPGRADE {
        check_vector(
            v.canonical_request,
            v.unix_secs,
            v.region,
            "ssmmessages",
            v.authorization,
        );
        let sid = v.url.split("/v1/data-channel/").nth(1).unwrap();
        let sid = sid.split('?').next().unwrap();
        let url = crate::model::StreamUrl::dangerous_parse_any_host(v.url, sid).unwrap();
        let mut out = [0u8; 512];
        // The region comes from an AWS URL; a loopback one takes the caller's.
        let fallback = if url.is_aws() {
            Some("xx-wrong-1")
        } else {
            Some(v.region)
        };
        let s = sign_upgrade(
            &url,
            fallback,
            &creds(v.session_token),
            v.unix_secs,
            &mut out,
        )
        .unwrap();
        assert_eq!(
            s.authorization, v.authorization,
            "canonical request expected:\n{}",
            v.canonical_request
        );
    }
}

fn request<'a>(headers: &'a [(&'a str, &'a str)]) -> HeaderRequest<'a> {
    HeaderRequest {
        method: "POST",
        host: "ssm.us-east-1.amazonaws.com",
        path: "/",
        query: None,
        headers,
        payload_sha256: EMPTY_BODY_SHA256,
        region: "us-east-1",
        service: "ssm",
    }
}

#[test]
fn header_values_are_canonicalised_and_names_any_case() {
    let mut a = [0u8; 512];
    let mut b = [0u8; 512];
    let x = sign_headers(
        &request(&[("X-Amz-Target", "  A   b\tc ")]),
        &creds(None),
        0,
        &mut a,
    )
    .unwrap();
    let y = sign_headers(
        &request(&[("x-amz-target", "A b c")]),
        &creds(None),
        0,
        &mut b,
    )
    .unwrap();
    assert_eq!(x.authorization, y.authorization);
    assert!(x
        .authorization
        .contains("SignedHeaders=host;x-amz-date;x-amz-target,"));
    let mut c = [0u8; 512];
    let z = sign_headers(
        &request(&[("x-amz-target", "A bc")]),
        &creds(None),
        0,
        &mut c,
    )
    .unwrap();
    assert_ne!(x.authorization, z.authorization);
}

#[test]
fn header_refusals() {
    let mut out = [0u8; 512];
    let c = creds(None);
    for headers in [
        &[("X-Amz-Target", "a\r\nInjected: 1")][..],
        &[("X-Amz-Target", "a\n")],
        &[("Bad Name", "a")],
        &[("", "a")],
        &[("Host", "evil")],
        &[("X-Amz-Date", "1")],
        &[("authorization", "x")],
        &[("x-amz-security-token", "x")],
        &[("a", "1"), ("A", "2")],
    ] {
        assert_eq!(
            sign_headers(&request(headers), &c, 0, &mut out).unwrap_err(),
            Error::BadHeader,
            "{headers:?}"
        );
    }
    let many = [
        ("a", "1"),
        ("b", "1"),
        ("c", "1"),
        ("d", "1"),
        ("e", "1"),
        ("f", "1"),
        ("g", "1"),
    ];
    assert_eq!(
        sign_headers(&request(&many), &c, 0, &mut out).unwrap_err(),
        Error::TooManyHeaders
    );
    assert!(sign_headers(&request(&many[..MAX_EXTRA_HEADERS]), &c, 0, &mut out).is_ok());
    let bad_token = creds(Some("tok\r\nX: y"));
    assert_eq!(
        sign_headers(&request(&[]), &bad_token, 0, &mut out).unwrap_err(),
        Error::BadHeader
    );
    let no_key = Credentials {
        access_key_id: "",
        ..c
    };
    assert_eq!(
        sign_headers(&request(&[]), &no_key, 0, &mut out).unwrap_err(),
        Error::BadInput
    );
    let mut r = request(&[]);
    r.region = "";
    assert_eq!(
        sign_headers(&r, &c, 0, &mut out).unwrap_err(),
        Error::BadInput
    );
    assert_eq!(
        sign_headers(&request(&[]), &c, u64::MAX, &mut out).unwrap_err(),
        Error::BadInput
    );

    // Exactly the size it needs, and one byte less.
    let n = sign_headers(&request(&[]), &c, 0, &mut out)
        .unwrap()
        .authorization
        .len();
    let mut small = vec![0u8; n - 1];
    assert_eq!(
        sign_headers(&request(&[]), &c, 0, &mut small).unwrap_err(),
        Error::BufferTooSmall { required: n }
    );
    let mut exact = vec![0u8; n];
    assert_eq!(
        sign_headers(&request(&[]), &c, 0, &mut exact)
            .unwrap()
            .authorization
            .len(),
        n
    );
}

#[test]
fn upgrade_refusals_and_host() {
    let c = creds(None);
    let mut out = [0u8; 512];
    let sid = "s-1";
    let loopback = crate::model::StreamUrl::dangerous_parse_any_host(
        "ws://127.0.0.1:8080/v1/data-channel/s-1",
        sid,
    )
    .unwrap();
    assert_eq!(
        sign_upgrade(&loopback, None, &c, 0, &mut out).unwrap_err(),
        Error::NoRegion
    );
    let mut h = [0u8; 128];
    assert_eq!(upgrade_host(&loopback, &mut h).unwrap(), "127.0.0.1:8080");
    let default_port = crate::model::StreamUrl::dangerous_parse_any_host(
        "ws://localhost:80/v1/data-channel/s-1",
        sid,
    )
    .unwrap();
    assert_eq!(upgrade_host(&default_port, &mut h).unwrap(), "localhost");
    let presigned = crate::model::StreamUrl::parse(
        "wss://ssmmessages.us-east-1.amazonaws.com/v1/data-channel/s-1?X-Amz-Signature=ab",
        sid,
    )
    .unwrap();
    assert_eq!(
        sign_upgrade(&presigned, None, &c, 0, &mut out).unwrap_err(),
        Error::AlreadyPresigned
    );
}

#[test]
fn signed_headers_debug_hides_the_authorization() {
    let mut out = [0u8; 512];
    let s = sign_headers(&request(&[]), &creds(None), 0, &mut out).unwrap();
    let d = format!("{s:?}");
    assert!(!d.contains(sig(s.authorization)), "{d}");
}
