//! Vectors from botocore 1.43 `SigV4QueryAuth` (service `ssmmessages`), with the signing time
//! fixed; the canonical request is botocore's, for the failure message and the signature check.

use std::format;
use std::string::{String, ToString};
use std::vec;
use std::vec::Vec;

use super::*;

struct Vector {
    url: &'static str,
    session_id: &'static str,
    access_key_id: &'static str,
    secret_access_key: &'static str,
    session_token: Option<&'static str>,
    unix_secs: u64,
    expires_secs: u32,
    signed_url: &'static str,
    canonical_request: &'static str,
}

const VECTORS: [Vector; 3] = [
    Vector {
        url: "wss://ssmmessages.us-east-1.amazonaws.com/v1/data-channel/user-0123456789abcdef0?role=publish_subscribe",
        session_id: "user-0123456789abcdef0",
        access_key_id: "AKIDEXAMPLE",
        secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        session_token: None,
        unix_secs: 1440938160,
        expires_secs: 60,
        signed_url: "wss://ssmmessages.us-east-1.amazonaws.com/v1/data-channel/user-0123456789abcdef0?role=publish_subscribe&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20150830%2Fus-east-1%2Fssmmessages%2Faws4_request&X-Amz-Date=20150830T123600Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host&X-Amz-Signature=29f89a97e313616037f0da0b5026de3e8409e1f8813ca0043c6682338914acab",
        canonical_request: "GET\n/v1/data-channel/user-0123456789abcdef0\nX-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20150830%2Fus-east-1%2Fssmmessages%2Faws4_request&X-Amz-Date=20150830T123600Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host&role=publish_subscribe\nhost:ssmmessages.us-east-1.amazonaws.com\n\nhost\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    },
    Vector {
        url: "wss://ssmmessages.cn-north-1.amazonaws.com.cn/v1/data-channel/Admin@corp,x=y+z-0123456789abcdef0?role=publish_subscribe&b=%2Fx%20y&a=1",
        session_id: "Admin@corp,x=y+z-0123456789abcdef0",
        access_key_id: "AKIDEXAMPLE",
        secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        session_token: Some("IQoJb3JpZ2luX2VjEXAMPLE//+token=="),
        unix_secs: 1795000000,
        expires_secs: 300,
        signed_url: "wss://ssmmessages.cn-north-1.amazonaws.com.cn/v1/data-channel/Admin@corp,x=y+z-0123456789abcdef0?role=publish_subscribe&b=%2Fx%20y&a=1&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20261118%2Fcn-north-1%2Fssmmessages%2Faws4_request&X-Amz-Date=20261118T110640Z&X-Amz-Expires=300&X-Amz-SignedHeaders=host&X-Amz-Security-Token=IQoJb3JpZ2luX2VjEXAMPLE%2F%2F%2Btoken%3D%3D&X-Amz-Signature=7ae66cbfbb126557d9055d6cb82a148a549e44f516b27265f3d2c7707a97b803",
        canonical_request: "GET\n/v1/data-channel/Admin%40corp%2Cx%3Dy%2Bz-0123456789abcdef0\nX-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20261118%2Fcn-north-1%2Fssmmessages%2Faws4_request&X-Amz-Date=20261118T110640Z&X-Amz-Expires=300&X-Amz-Security-Token=IQoJb3JpZ2luX2VjEXAMPLE%2F%2F%2Btoken%3D%3D&X-Amz-SignedHeaders=host&a=1&b=%2Fx%20y&role=publish_subscribe\nhost:ssmmessages.cn-north-1.amazonaws.com.cn\n\nhost\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    },
    Vector {
        url: "wss://ssmmessages-fips.us-gov-west-1.amazonaws.com/v1/data-channel/s-1",
        session_id: "s-1",
        access_key_id: "AKIAIOSFODNN7EXAMPLE",
        secret_access_key: "secret",
        session_token: None,
        unix_secs: 0,
        expires_secs: 900,
        signed_url: "wss://ssmmessages-fips.us-gov-west-1.amazonaws.com/v1/data-channel/s-1?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F19700101%2Fus-gov-west-1%2Fssmmessages%2Faws4_request&X-Amz-Date=19700101T000000Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Signature=1580501d3320c2eca223bd322c58a8e38095a227a29cbe65afa7cae71bde8160",
        canonical_request: "GET\n/v1/data-channel/s-1\nX-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F19700101%2Fus-gov-west-1%2Fssmmessages%2Faws4_request&X-Amz-Date=19700101T000000Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host\nhost:ssmmessages-fips.us-gov-west-1.amazonaws.com\n\nhost\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    },
];

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn sorted_params(url: &str) -> Vec<&str> {
    let mut v: Vec<&str> = url
        .split_once('?')
        .map_or("", |(_, q)| q)
        .split('&')
        .collect();
    v.sort_unstable();
    v
}

fn creds(v: &Vector) -> Credentials<'static> {
    Credentials {
        access_key_id: v.access_key_id,
        secret_access_key: v.secret_access_key,
        session_token: v.session_token,
    }
}

#[test]
fn botocore_vectors() {
    for v in &VECTORS {
        let url = StreamUrl::parse(v.url, v.session_id).unwrap();
        let mut out = [0u8; 1024];
        let n = presign_stream_url(&url, &creds(v), v.unix_secs, v.expires_secs, &mut out).unwrap();
        let ours = core::str::from_utf8(&out[..n]).unwrap();
        let sig = |u: &str| u.split("X-Amz-Signature=").nth(1).unwrap().to_string();
        // botocore's canonical request, signed by hand, gives botocore's signature...
        let date = AmzDate::from_unix_secs(v.unix_secs).unwrap();
        let region = url.region().unwrap();
        let sts = format!(
            "{ALGORITHM}\n{}\n{}/{region}/{SERVICE}/aws4_request\n{}",
            date.as_str(),
            date.date(),
            hex(&Sha256::digest(v.canonical_request.as_bytes()))
        );
        let key = signing_key(v.secret_access_key, date.date(), region, SERVICE);
        assert_eq!(
            hex(&hmac_sha256(&[&key], sts.as_bytes())),
            sig(v.signed_url)
        );
        // ...and ours matches it, so our canonical request is botocore's.
        assert_eq!(
            sig(ours),
            sig(v.signed_url),
            "{}\ncanonical request expected:\n{}",
            v.url,
            v.canonical_request
        );
        // Same parameters (the order in the URL is free), same scheme, host and path.
        assert_eq!(sorted_params(ours), sorted_params(v.signed_url));
        assert_eq!(ours.split('?').next(), v.signed_url.split('?').next());
        // The result is itself a valid StreamUrl with the presigned query redacted in Debug.
        let again = StreamUrl::parse(ours, v.session_id).unwrap();
        assert!(!format!("{again:?}").contains(&sig(ours)));
        if let Some(t) = v.session_token {
            assert!(!format!("{again:?}").contains(t));
        }
    }
}

#[test]
fn signing_key_and_hmac_known_answers() {
    // AWS General Reference, "Deriving the signing key" example.
    let k = signing_key(
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        "20120215",
        "us-east-1",
        "iam",
    );
    assert_eq!(
        hex(&k),
        "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
    );
    // RFC 4231 test cases 1 and 6 (a key longer than the block).
    assert_eq!(
        hex(&hmac_sha256(&[&[0x0b; 20]], b"Hi There")),
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
    );
    let long = [0xaa; 131];
    let (a, b) = long.split_at(50);
    assert_eq!(
        hex(&hmac_sha256(
            &[a, b],
            b"Test Using Larger Than Block-Size Key - Hash Key First"
        )),
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
    );
}

#[test]
fn amz_dates() {
    for (secs, text) in [
        (0, "19700101T000000Z"),
        (1_440_938_160, "20150830T123600Z"),
        (951_782_400, "20000229T000000Z"),
        (951_868_799, "20000229T235959Z"),
        (4_107_542_400, "21000301T000000Z"),
        (253_402_300_799, "99991231T235959Z"),
    ] {
        let d = AmzDate::from_unix_secs(secs).unwrap();
        assert_eq!(d.as_str(), text);
        assert_eq!(d.date(), &text[..8]);
    }
    assert_eq!(
        AmzDate::from_unix_secs(253_402_300_800),
        Err(Error::BadInput)
    );
    assert_eq!(AmzDate::from_unix_secs(u64::MAX), Err(Error::BadInput));
}

#[test]
fn refusals() {
    let v = &VECTORS[0];
    let c = creds(v);
    let sid = v.session_id;
    let try_url = |u: &str| {
        let url = StreamUrl::dangerous_parse_any_host(u, sid).unwrap();
        presign_stream_url(&url, &c, 0, 60, &mut [0u8; 2048])
    };
    let base = format!("wss://ssmmessages.us-east-1.amazonaws.com/v1/data-channel/{sid}");
    assert_eq!(
        try_url(&format!("ws://127.0.0.1:8080/v1/data-channel/{sid}")),
        Err(Error::NoRegion)
    );
    assert_eq!(
        try_url(&format!("{base}?X-Amz-Signature=abc")),
        Err(Error::AlreadyPresigned)
    );
    assert_eq!(
        try_url(&format!("{base}?x-amz-date=1")),
        Err(Error::AlreadyPresigned)
    );
    assert_eq!(
        try_url(&format!("{base}?X%2DAmz-Date=1")),
        Err(Error::AlreadyPresigned)
    );
    assert_eq!(try_url(&format!("{base}?a=%zz")), Err(Error::BadQuery));
    assert_eq!(try_url(&format!("{base}?a=%4")), Err(Error::BadQuery));
    assert_eq!(try_url(&format!("{base}?a=1&a=2")), Err(Error::BadQuery));
    assert_eq!(try_url(&format!("{base}?a=1&%61=2")), Err(Error::BadQuery));
    let many: Vec<String> = (0..=MAX_QUERY_PARAMS).map(|i| format!("k{i}=v")).collect();
    assert_eq!(
        try_url(&format!("{base}?{}", many.join("&"))),
        Err(Error::TooManyParams)
    );
    assert!(try_url(&format!("{base}?{}", many[..MAX_QUERY_PARAMS].join("&"))).is_ok());
    // Empty pairs and a bare `?` are fine.
    assert!(try_url(&format!("{base}?")).is_ok());
    assert!(try_url(&format!("{base}?&&a=1&")).is_ok());

    let url = StreamUrl::parse(v.url, sid).unwrap();
    let mut buf = [0u8; 2048];
    for e in [0, MAX_EXPIRES_SECS + 1] {
        assert_eq!(
            presign_stream_url(&url, &c, 0, e, &mut buf),
            Err(Error::BadExpires)
        );
    }
    assert!(presign_stream_url(&url, &c, 0, MAX_EXPIRES_SECS, &mut buf).is_ok());
    let empty = Credentials {
        access_key_id: "",
        ..c
    };
    assert_eq!(
        presign_stream_url(&url, &empty, 0, 60, &mut buf),
        Err(Error::BadInput)
    );

    let n = presign_stream_url(&url, &c, 0, 60, &mut buf).unwrap();
    let mut small = vec![0u8; n - 1];
    assert_eq!(
        presign_stream_url(&url, &c, 0, 60, &mut small),
        Err(Error::BufferTooSmall { required: n })
    );
    let mut exact = vec![0u8; n];
    assert_eq!(presign_stream_url(&url, &c, 0, 60, &mut exact), Ok(n));
    assert_eq!(exact[..], buf[..n]);
}

#[test]
fn secrets_stay_out_of_debug() {
    let c = Credentials {
        access_key_id: "AKIDEXAMPLE",
        secret_access_key: "SECRETKEY",
        session_token: Some("SESSIONTOKEN"),
    };
    let d = format!("{c:?}");
    assert!(d.contains("AKIDEXAMPLE"));
    assert!(
        !d.contains("SECRETKEY") && !d.contains("SESSIONTOKEN"),
        "{d}"
    );
}

#[test]
fn query_values_are_canonicalised() {
    // `+` is a space, escapes are re-encoded in upper case, reserved characters are escaped.
    let v = &VECTORS[0];
    let base = format!(
        "wss://ssmmessages.us-east-1.amazonaws.com/v1/data-channel/{}",
        v.session_id
    );
    let url_text = format!("{base}?b=x+y%2f&a=%7e!");
    let url = StreamUrl::parse(&url_text, v.session_id).unwrap();
    let mut buf = [0u8; 1024];
    let n = presign_stream_url(&url, &creds(v), 0, 60, &mut buf).unwrap();
    let out = core::str::from_utf8(&buf[..n]).unwrap();
    assert!(
        out.starts_with(&format!("{base}?X-Amz-Algorithm=AWS4-HMAC-SHA256&")),
        "{out}"
    );
    assert!(
        out.contains("&X-Amz-SignedHeaders=host&a=~%21&b=x%20y%2F&X-Amz-Signature="),
        "{out}"
    );
}
