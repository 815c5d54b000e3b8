//! Header-signing vectors from botocore 1.44 `SigV4Auth` (`gen_vectors.py`, signing time fixed):
//! JSON API calls (service `ssm`) and the WebSocket upgrade GET (service `ssmmessages`).

use std::format;
use std::string::String;
use std::vec;

use super::*;
use crate::sigv4::{hmac_sha256, signing_key};

struct ApiVector {
    host: &'static str,
    region: &'static str,
    target: &'static str,
    body: &'static str,
    session_token: Option<&'static str>,
    unix_secs: u64,
    amz_date: &'static str,
    authorization: &'static str,
    canonical_request: &'static str,
    body_sha256: &'static str,
}

struct UpgradeVector {
    url: &'static str,
    region: &'static str,
    session_token: Option<&'static str>,
    unix_secs: u64,
    authorization: &'static str,
    canonical_request: &'static str,
}

const AKID: &str = "AKIDEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

const API: [ApiVector; 4] = [
    ApiVector {
        host: "ssm.us-east-1.amazonaws.com",
        region: "us-east-1",
        target: "AmazonSSM.StartSession",
        body: "{\"Target\":\"i-0123456789abcdef0\"}",
        session_token: None,
        unix_secs: 1440938160,
        amz_date: "20150830T123600Z",
        authorization: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/ssm/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=dee0bdcea4690009ad2ac39ee57c761731d6a13df7c02a96c4e99867c42ac32f",
        canonical_request: "POST\n/\n\ncontent-type:application/x-amz-json-1.1\nhost:ssm.us-east-1.amazonaws.com\nx-amz-date:20150830T123600Z\nx-amz-target:AmazonSSM.StartSession\n\ncontent-type;host;x-amz-date;x-amz-target\n377a7737a95b10b17bfca1a52c122817c30dd291e6277e778108b1b379c0aca1",
        body_sha256: "377a7737a95b10b17bfca1a52c122817c30dd291e6277e778108b1b379c0aca1",
    },
    ApiVector {
        host: "ssm.eu-west-1.amazonaws.com",
        region: "eu-west-1",
        target: "AmazonSSM.ResumeSession",
        body: "{\"SessionId\":\"user-0123456789abcdef0\"}",
        session_token: Some("IQoJb3JpZ2luX2VjEXAMPLE//+token=="),
        unix_secs: 1795000000,
        amz_date: "20261118T110640Z",
        authorization: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261118/eu-west-1/ssm/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target, Signature=8164d0f7e2fa61a7fea0dbf512e34a03d11b722279a762709f63e97e1b1b20f7",
        canonical_request: "POST\n/\n\ncontent-type:application/x-amz-json-1.1\nhost:ssm.eu-west-1.amazonaws.com\nx-amz-date:20261118T110640Z\nx-amz-security-token:IQoJb3JpZ2luX2VjEXAMPLE//+token==\nx-amz-target:AmazonSSM.ResumeSession\n\ncontent-type;host;x-amz-date;x-amz-security-token;x-amz-target\n493f11624d3fd5cd4ec9727867045ae89df2bea00cdbfb17834902687d04550a",
        body_sha256: "493f11624d3fd5cd4ec9727867045ae89df2bea00cdbfb17834902687d04550a",
    },
    ApiVector {
        host: "ssm.cn-north-1.amazonaws.com.cn",
        region: "cn-north-1",
        target: "AmazonSSM.TerminateSession",
        body: "{\"SessionId\":\"Admin@corp,x=y+z-0123456789abcdef0\"}",
        session_token: Some("IQoJb3JpZ2luX2VjEXAMPLE//+token=="),
        unix_secs: 0,
        amz_date: "19700101T000000Z",
        authorization: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/19700101/cn-north-1/ssm/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target, Signature=f853d28e3b20ad99f6f15499528c3dc845394c77e0882f1ddf272824643da04b",
        canonical_request: "POST\n/\n\ncontent-type:application/x-amz-json-1.1\nhost:ssm.cn-north-1.amazonaws.com.cn\nx-amz-date:19700101T000000Z\nx-amz-security-token:IQoJb3JpZ2luX2VjEXAMPLE//+token==\nx-amz-target:AmazonSSM.TerminateSession\n\ncontent-type;host;x-amz-date;x-amz-security-token;x-amz-target\ne428a280f9d9f9e3ed38799ff5995fd35a86dc333cea1c00f1a5438cdb62b16b",
        body_sha256: "e428a280f9d9f9e3ed38799ff5995fd35a86dc333cea1c00f1a5438cdb62b16b",
    },
    ApiVector {
        host: "127.0.0.1:8443",
        region: "us-east-1",
        target: "AmazonSSM.StartSession",
        body: "{\"Target\":\"i-0emulator\",\"DocumentName\":\"AWS-StartNonInteractiveCommand\",\"Parameters\":{\"command\":[\"echo \\\"hi\\\"\"]},\"Reason\":\"démo \\\\ end\"}",
        session_token: None,
        unix_secs: 1700000000,
        amz_date: "20231114T221320Z",
        authorization: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20231114/us-east-1/ssm/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=5bcbab764c7218d31d2eba0d28fbecd2b75f44e8d497097da41f4da41aadf685",
        canonical_request: "POST\n/\n\ncontent-type:application/x-amz-json-1.1\nhost:127.0.0.1:8443\nx-amz-date:20231114T221320Z\nx-amz-target:AmazonSSM.StartSession\n\ncontent-type;host;x-amz-date;x-amz-target\n0f5cb5cfb96539b6412bd1ba0281d3ca3b84cfad5a10d2c9cc1a15857aaed149",
        body_sha256: "0f5cb5cfb96539b6412bd1ba0281d3ca3b84cfad5a10d2c9cc1a15857aaed149",
    },
];

const UPGRADE: [UpgradeVector; 3] = [
    UpgradeVector {
        url: "wss://ssmmessages.us-east-1.amazonaws.com/v1/data-channel/user-0123456789abcdef0?role=publish_subscribe",
        region: "us-east-1",
        session_token: None,
        unix_secs: 1440938160,
        authorization: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/ssmmessages/aws4_request, SignedHeaders=host;x-amz-date, Signature=30b12d58f2421b9402afd123103d078e3de8ce11be56edb81493c0a166f0e7b0",
        canonical_request: "GET\n/v1/data-channel/user-0123456789abcdef0\nrole=publish_subscribe\nhost:ssmmessages.us-east-1.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    },
    UpgradeVector {
        url: "wss://ssmmessages-fips.us-gov-west-1.amazonaws.com/v1/data-channel/Admin@corp,x=y+z-0123456789abcdef0?role=publish_subscribe&b=%2Fx%20y&a=1",
        region: "us-gov-west-1",
        session_token: Some("IQoJb3JpZ2luX2VjEXAMPLE//+token=="),
        unix_secs: 1795000000,
        authorization: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261118/us-gov-west-1/ssmmessages/aws4_request, SignedHeaders=host;x-amz-date;x-amz-security-token, Signature=b965edbe56223e06c930e5876f85698b4450c812c786444982663cd21d43e1af",
        canonical_request: "GET\n/v1/data-channel/Admin%40corp%2Cx%3Dy%2Bz-0123456789abcdef0\na=1&b=%2Fx%20y&role=publish_subscribe\nhost:ssmmessages-fips.us-gov-west-1.amazonaws.com\nx-amz-date:20261118T110640Z\nx-amz-security-token:IQoJb3JpZ2luX2VjEXAMPLE//+token==\n\nhost;x-amz-date;x-amz-security-token\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    },
    UpgradeVector {
        url: "wss://127.0.0.1:4443/v1/data-channel/emulator-0a1b2c?role=publish_subscribe",
        region: "eu-central-1",
        session_token: Some("IQoJb3JpZ2luX2VjEXAMPLE//+token=="),
        unix_secs: 1700000000,
        authorization: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20231114/eu-central-1/ssmmessages/aws4_request, SignedHeaders=host;x-amz-date;x-amz-security-token, Signature=7dcfcffbdce7f70d932a1e29a9b58939b170c850a3bb3e3a3fc7f53f33e5725e",
        canonical_request: "GET\n/v1/data-channel/emulator-0a1b2c\nrole=publish_subscribe\nhost:127.0.0.1:4443\nx-amz-date:20231114T221320Z\nx-amz-security-token:IQoJb3JpZ2luX2VjEXAMPLE//+token==\n\nhost;x-amz-date;x-amz-security-token\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    },
];

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
