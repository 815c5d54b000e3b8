//! SigV4 header signing and the SSM API client's parsing on the Cortex-M4: botocore's
//! known answers (the core's own `header_vectors.rs`, included), and a signed StartSession
//! request and a chunked answer taken through the device's code path.

use ssm_proto::api::{self, http, BodyDecoder, Endpoint, Operation};
use ssm_proto::model::Endpoints;
use ssm_proto::sigv4::{sign_json_request, sign_upgrade, Credentials};

use crate::check;
use crate::harness::{Test, TestResult};
use crate::stack;

include!("../../../../core/src/sigv4/header_vectors.rs");

/// The tests in this module.
pub static TESTS: &[Test] = &[
    Test {
        name: "botocore_json_api_signatures",
        run: botocore_json_api_signatures,
    },
    Test {
        name: "botocore_upgrade_signatures",
        run: botocore_upgrade_signatures,
    },
    Test {
        name: "start_session_request_and_chunked_answer",
        run: start_session_request_and_chunked_answer,
    },
];

fn creds(token: Option<&'static str>) -> Credentials<'static> {
    Credentials {
        access_key_id: AKID,
        secret_access_key: SECRET,
        session_token: token,
    }
}

fn botocore_json_api_signatures() -> TestResult {
    check!(API.len() == 4);
    let mut deepest = Some(0);
    for v in &API {
        let mut out = [0u8; 512];
        let creds = creds(v.session_token);
        let (s, used) = stack::measure(|| {
            sign_json_request(
                v.host,
                v.region,
                v.target,
                v.body.as_bytes(),
                &creds,
                v.unix_secs,
                &mut out,
            )
        });
        deepest = deepest.zip(used).map(|(a, b)| a.max(b));
        check!(s.is_ok(), v.target);
        let Ok(s) = s else { continue };
        check!(s.authorization == v.authorization, v.target);
        check!(s.amz_date.as_str() == v.amz_date, v.target);
    }
    stack::report("SigV4 signing of an API call (sign_json_request)", deepest);
    check!(deepest.is_some());
    Ok(())
}

fn botocore_upgrade_signatures() -> TestResult {
    check!(UPGRADE.len() == 3);
    let mut deepest = Some(0);
    for v in &UPGRADE {
        let sid = v
            .url
            .split("/v1/data-channel/")
            .nth(1)
            .and_then(|s| s.split('?').next())
            .unwrap_or("");
        let url = ssm_proto::model::StreamUrl::dangerous_parse_any_host(v.url, sid);
        check!(url.is_ok(), v.url);
        let Ok(url) = url else { continue };
        let mut out = [0u8; 512];
        let creds = creds(v.session_token);
        let (s, used) =
            stack::measure(|| sign_upgrade(&url, Some(v.region), &creds, v.unix_secs, &mut out));
        deepest = deepest.zip(used).map(|(a, b)| a.max(b));
        check!(s.is_ok_and(|s| s.authorization == v.authorization), v.url);
    }
    stack::report("SigV4 signing of the upgrade (sign_upgrade)", deepest);
    check!(deepest.is_some());
    Ok(())
}

fn start_session_request_and_chunked_answer() -> TestResult {
    // The request: botocore's first API vector's body, so its signature is known.
    let v = &API[0];
    let mut host = [0u8; api::HOST_CAPACITY];
    let ep = Endpoint::aws(v.region, &mut host);
    check!(ep.is_ok());
    let Ok(ep) = ep else { return Ok(()) };
    let mut body = [0u8; 128];
    let n = api::StartSessionRequest {
        target: "i-0123456789abcdef0",
        ..Default::default()
    }
    .emit(&mut body);
    check!(n.is_ok_and(|n| &body[..n] == v.body.as_bytes()));
    let n = v.body.len();
    let mut out = [0u8; 1024];
    let len = api::write_request(
        &ep,
        Operation::StartSession,
        &body[..n],
        &creds(None),
        v.unix_secs,
        &mut out,
    );
    check!(len.is_ok());
    let len = len.unwrap_or(0);
    let text = core::str::from_utf8(&out[..len]).unwrap_or("");
    check!(text.starts_with("POST / HTTP/1.1\r\nHost: ssm.us-east-1.amazonaws.com\r\n"));
    check!(text.contains(v.authorization));
    check!(text.ends_with(v.body));

    // The answer, chunked, fed 5 bytes at a time.
    let answer: &[u8] = b"HTTP/1.1 200 OK\r\nDate: Tue, 01 Dec 2026 22:01:46 GMT\r\nTransfer-Encoding: chunked\r\n\r\n1d\r\n{\"SessionId\":\"user-0123456789\r\n89\r\nabcdef0\",\"StreamUrl\":\"wss:\\/\\/ssmmessages.us-east-1.amazonaws.com\\/v1\\/data-channel\\/user-0123456789abcdef0\",\"TokenValue\":\"AAEAAbKr0Vx1\"}\r\n0\r\n\r\n";
    let head = http::parse_head(answer);
    check!(matches!(head, Ok(Some(_))));
    let Ok(Some(head)) = head else { return Ok(()) };
    check!(head.date == Some(1_796_162_506));
    let mut buf = [0u8; 512];
    let dec = BodyDecoder::new(&head, buf.len());
    check!(dec.is_ok());
    let Ok(mut dec) = dec else { return Ok(()) };
    let mut done = false;
    for piece in answer[head.len..].chunks(5) {
        let p = dec.feed(piece, &mut buf);
        check!(p.is_ok());
        done |= p.is_ok_and(|p| p.done);
    }
    check!(done);
    let body_len = dec.len();
    let (body, scratch) = buf.split_at_mut(body_len);
    let r = api::parse_session_answer(head.status, body, scratch, Endpoints::Aws);
    check!(r.is_ok_and(|r| r.session_id() == "user-0123456789abcdef0"
        && r.stream_url().region() == Some("us-east-1")
        && r.token().expose_secret() == "AAEAAbKr0Vx1"));
    Ok(())
}
