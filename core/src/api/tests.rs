//! The API client's pieces: bodies against serde_json, the signed request against botocore's
//! vector (`sigv4/header_tests.rs`), HTTP answers as AWS sends them, and hostile ones.

use std::format;
use std::string::String;
use std::vec;
use std::vec::Vec;

use super::*;

const SESSION: &str = r#"{"SessionId":"user-0123456789abcdef0","StreamUrl":"wss:\/\/ssmmessages.us-east-1.amazonaws.com\/v1\/data-channel\/user-0123456789abcdef0?role=publish_subscribe","TokenValue":"AAEAAbKr0Vx1"}"#;

fn json(buf: &[u8]) -> serde_json::Value {
    serde_json::from_slice(buf).unwrap()
}

#[test]
fn start_session_bodies_escape_and_round_trip() {
    let values: &[&str] = &["echo \"hi\"\\\n\t\u{1}", "ünï"];
    let params: &[(&str, &[&str])] = &[("command", values), ("we\"ird", &[])];
    let r = StartSessionRequest {
        target: "i-0123456789abcdef0",
        document_name: Some("AWS-StartNonInteractiveCommand"),
        parameters: params,
        reason: Some("line\r\nbreak"),
    };
    let mut buf = [0u8; 512];
    let n = r.emit(&mut buf).unwrap();
    let v = json(&buf[..n]);
    assert_eq!(
        v,
        serde_json::json!({
            "Target": "i-0123456789abcdef0",
            "DocumentName": "AWS-StartNonInteractiveCommand",
            "Parameters": {"command": ["echo \"hi\"\\\n\t\u{1}", "ünï"], "we\"ird": []},
            "Reason": "line\r\nbreak",
        })
    );
    // Minimal form, exact bytes.
    let min = StartSessionRequest {
        target: "i-1",
        ..Default::default()
    };
    let n = min.emit(&mut buf).unwrap();
    assert_eq!(&buf[..n], br#"{"Target":"i-1"}"#);
    // Too small: the size it needs, nothing written.
    let mut small = [0xaau8; 15];
    assert_eq!(
        min.emit(&mut small),
        Err(Error::BufferTooSmall { required: 16 })
    );
    assert!(small.iter().all(|b| *b == 0xaa));
    assert_eq!(
        StartSessionRequest::default().emit(&mut buf),
        Err(Error::BadRequest)
    );
    let n = session_id_body("user-0123456789abcdef0", &mut buf).unwrap();
    assert_eq!(&buf[..n], br#"{"SessionId":"user-0123456789abcdef0"}"#);
    assert_eq!(session_id_body("bad\"id", &mut buf), Err(Error::BadRequest));
}

#[test]
fn the_signed_request_is_botocores() {
    // sigv4/header_tests.rs vector 2 (botocore): eu-west-1 ResumeSession with a session token.
    let mut host = [0u8; HOST_CAPACITY];
    let ep = Endpoint::aws("eu-west-1", &mut host).unwrap();
    assert_eq!(ep.host, "ssm.eu-west-1.amazonaws.com");
    let body = br#"{"SessionId":"user-0123456789abcdef0"}"#;
    let creds = Credentials {
        access_key_id: "AKIDEXAMPLE",
        secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        session_token: Some("IQoJb3JpZ2luX2VjEXAMPLE//+token=="),
    };
    let mut out = [0u8; 1024];
    let n = write_request(
        &ep,
        Operation::ResumeSession,
        body,
        &creds,
        1795000000,
        &mut out,
    )
    .unwrap();
    let text = core::str::from_utf8(&out[..n]).unwrap();
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut req = httparse::Request::new(&mut headers);
    let head = match req.parse(&out[..n]).unwrap() {
        httparse::Status::Complete(h) => h,
        httparse::Status::Partial => panic!("partial: {text}"),
    };
    assert_eq!(req.method, Some("POST"));
    assert_eq!(req.path, Some("/"));
    let get = |name: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| core::str::from_utf8(h.value).unwrap())
    };
    assert_eq!(get("host"), Some("ssm.eu-west-1.amazonaws.com"));
    assert_eq!(get("x-amz-date"), Some("20261118T110640Z"));
    assert_eq!(get("x-amz-target"), Some("AmazonSSM.ResumeSession"));
    assert_eq!(get("content-type"), Some("application/x-amz-json-1.1"));
    assert_eq!(get("x-amz-security-token"), creds.session_token);
    assert_eq!(get("content-length"), Some("38"));
    assert_eq!(
        get("authorization"),
        Some("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261118/eu-west-1/ssm/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target, Signature=8164d0f7e2fa61a7fea0dbf512e34a03d11b722279a762709f63e97e1b1b20f7")
    );
    assert_eq!(&out[head..n], body);
    assert_eq!(
        write_request(
            &ep,
            Operation::ResumeSession,
            body,
            &creds,
            1795000000,
            &mut out[..n - 1]
        ),
        Err(Error::BufferTooSmall { required: n })
    );

    // A non-default port is in Host (and so in the signature, as botocore's vector 4).
    let local = Endpoint {
        host: "127.0.0.1",
        port: 8443,
        tls: true,
        region: "us-east-1",
    };
    let n = write_request(&local, Operation::StartSession, b"{}", &creds, 0, &mut out).unwrap();
    assert!(core::str::from_utf8(&out[..n])
        .unwrap()
        .contains("\r\nHost: 127.0.0.1:8443\r\n"));

    let mut cn = [0u8; HOST_CAPACITY];
    assert_eq!(
        Endpoint::aws("cn-north-1", &mut cn).unwrap().host,
        "ssm.cn-north-1.amazonaws.com.cn"
    );
    for bad in ["", "US-EAST-1", "us east", "a.b", &"x".repeat(33)] {
        assert_eq!(
            Endpoint::aws(bad, &mut [0u8; HOST_CAPACITY]),
            Err(Error::BadRequest),
            "{bad}"
        );
    }
}

/// Parses a whole response the way a device does, fed `step` bytes at a time, with a body
/// buffer of `cap` bytes.
fn read_response(
    raw: &[u8],
    step: usize,
    cap: usize,
) -> Result<(ResponseHead, Vec<u8>), HttpError> {
    let mut filled = 0;
    let head = loop {
        if let Some(h) = http::parse_head(&raw[..filled])? {
            break h;
        }
        if filled == raw.len() {
            return Err(HttpError::Truncated);
        }
        filled = (filled + step).min(raw.len());
    };
    let mut body = vec![0u8; cap];
    let mut dec = BodyDecoder::new(&head, cap)?;
    let mut pos = head.len;
    loop {
        let end = (pos + step).min(raw.len());
        let p = dec.feed(&raw[pos..end], &mut body)?;
        pos += p.consumed;
        if p.done {
            break;
        }
        if pos == raw.len() {
            dec.finish()?;
            break;
        }
    }
    body.truncate(dec.len());
    Ok((head, body))
}

#[test]
fn aws_answers_parse() {
    // Content-Length, as the SSM API answers.
    let raw = format!(
        "HTTP/1.1 200 OK\r\nx-amzn-RequestId: 1b2c\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\nDate: Tue, 01 Dec 2026 22:01:46 GMT\r\n\r\n{SESSION}",
        SESSION.len()
    );
    for step in [1, 7, 4096] {
        let (head, body) = read_response(raw.as_bytes(), step, 1024).unwrap();
        assert_eq!(head.status, 200);
        assert_eq!(head.date, Some(1_796_162_506));
        assert!(!head.close);
        assert_eq!(body, SESSION.as_bytes());
        let mut scratch = [0u8; 1024];
        let r = parse_session_answer(200, &body, &mut scratch, Endpoints::Aws).unwrap();
        assert_eq!(r.session_id(), "user-0123456789abcdef0");
        assert_eq!(r.stream_url().region(), Some("us-east-1"));
        assert_eq!(r.token().expose_secret(), "AAEAAbKr0Vx1");
    }
    // Chunked, with an extension and a trailer.
    let (a, b) = SESSION.split_at(40);
    let raw = format!(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x};ext=1\r\n{a}\r\n{:X}\r\n{b}\r\n0\r\nx-trailer: y\r\n\r\n",
        a.len(),
        b.len()
    );
    for step in [1, 3, 4096] {
        let (head, body) = read_response(raw.as_bytes(), step, 1024).unwrap();
        assert_eq!(head.framing, Framing::Chunked);
        assert!(head.close);
        assert_eq!(body, SESSION.as_bytes());
    }
    // Until close (HTTP/1.0 style).
    let raw = format!("HTTP/1.0 200 OK\r\n\r\n{SESSION}");
    let (head, body) = read_response(raw.as_bytes(), 5, 1024).unwrap();
    assert_eq!(head.framing, Framing::UntilClose);
    assert!(head.close);
    assert_eq!(body, SESSION.as_bytes());
    // Terminate.
    let raw =
        "HTTP/1.1 200 OK\r\nContent-Length: 38\r\n\r\n{\"SessionId\":\"user-0123456789abcdef0\"}";
    let (head, body) = read_response(raw.as_bytes(), 4096, 64).unwrap();
    assert_eq!(check_terminate_answer(head.status, &body), Ok(()));
}

#[test]
fn hostile_answers_are_typed_errors() {
    let ok = |s: &str| read_response(s.as_bytes(), 3, 64);
    let cases: &[(&str, HttpError)] = &[
        (
            "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
            HttpError::BadLength,
        ),
        (
            "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            HttpError::BadLength,
        ),
        (
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
            HttpError::BadLength,
        ),
        (
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n",
            HttpError::BadLength,
        ),
        (
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            HttpError::UnsupportedEncoding,
        ),
        (
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            HttpError::UnsupportedEncoding,
        ),
        (
            "HTTP/1.1 200 OK\r\nContent-Length: 65\r\n\r\n",
            HttpError::BodyTooLarge { required: 65 },
        ),
        (
            "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
            HttpError::Truncated,
        ),
        (
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\n",
            HttpError::BadChunk,
        ),
        (
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffff\r\n",
            HttpError::BodyTooLarge {
                required: 0xffff_ffff,
            },
        ),
        (
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n41\r\n",
            HttpError::BodyTooLarge { required: 65 },
        ),
        (
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            HttpError::BadChunk,
        ),
        (
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\n",
            HttpError::BadChunk,
        ),
        (
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabX",
            HttpError::BadChunk,
        ),
        (
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\nab",
            HttpError::BadChunk,
        ),
        (
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n",
            HttpError::Truncated,
        ),
        (
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n",
            HttpError::Truncated,
        ),
        ("HTTP/1.1 100 Continue\r\n\r\n", HttpError::Informational),
        ("SSH-2.0-OpenSSH\r\n\r\n", HttpError::BadHead),
        (
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            HttpError::Truncated,
        ),
    ];
    for (raw, want) in cases {
        assert_eq!(ok(raw).unwrap_err(), *want, "{raw:?}");
    }
    let long_ext = format!(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;{}\r\n",
        "x".repeat(300)
    );
    assert_eq!(ok(&long_ext).unwrap_err(), HttpError::BadChunk);
    let long_trailer = format!(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n{}\r\n\r\n",
        "x".repeat(300)
    );
    assert_eq!(ok(&long_trailer).unwrap_err(), HttpError::BadChunk);
    let many: String = (0..40).map(|i| format!("h{i}: v\r\n")).collect();
    assert_eq!(
        http::parse_head(format!("HTTP/1.1 200 OK\r\n{many}\r\n").as_bytes()).unwrap_err(),
        HttpError::TooManyHeaders
    );
    // Every prefix of a good answer is "need more" or parses; none panics.
    let raw = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nDate: Tue, 01 Dec 2026 22:01:46 GMT\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    for cut in 0..raw.len() {
        let r = read_response(&raw.as_bytes()[..cut], 1, 64);
        assert!(r.is_err(), "prefix {cut} parsed");
    }
    assert_eq!(read_response(raw.as_bytes(), 1, 64).unwrap().1, b"hello");
    // No body for 204, whatever follows.
    let (h, body) = ok("HTTP/1.1 204 No Content\r\n\r\n").unwrap();
    assert_eq!((h.status, body.len()), (204, 0));
}

#[test]
fn service_errors_are_typed() {
    let e = |status, body: &str| ServiceError::parse(status, body.as_bytes());
    let skewed = e(
        400,
        r#"{"__type":"InvalidSignatureException","message":"Signature expired: 20150830T123600Z is now earlier than 20150830T124100Z (20150830T124600Z - 5 min.)"}"#,
    );
    assert_eq!(skewed.kind, ServiceErrorKind::InvalidSignature);
    assert!(skewed.expired_signature);
    assert!(skewed.is_clock_skew(0, None));
    let future = e(
        400,
        r#"{"__type":"InvalidSignatureException","Message":"Signature not yet current: 20991231T000000Z is still later than 20261201T220000Z (20261201T221500Z + 15 min.)"}"#,
    );
    assert!(future.is_clock_skew(0, None));
    let mismatch = e(
        403,
        r#"{"__type":"com.amazon.coral.service#SignatureDoesNotMatch","message":"The request signature we calculated does not match the signature you provided."}"#,
    );
    assert_eq!(mismatch.kind, ServiceErrorKind::SignatureDoesNotMatch);
    assert!(!mismatch.expired_signature);
    // Only the clock explains it when Date is far from the signing time.
    assert!(!mismatch.is_clock_skew(1_000_000, Some(1_000_000 + SKEW_THRESHOLD_SECS)));
    assert!(mismatch.is_clock_skew(1_000_000, Some(1_000_000 + SKEW_THRESHOLD_SECS + 1)));
    assert!(mismatch.is_clock_skew(1_000_000, Some(1_000_000 - SKEW_THRESHOLD_SECS - 1)));
    assert!(!mismatch.is_clock_skew(1_000_000, None));
    for (ty, kind) in [
        ("ExpiredTokenException", ServiceErrorKind::ExpiredToken),
        (
            "com.amazonaws.ssm#DoesNotExistException",
            ServiceErrorKind::DoesNotExist,
        ),
        (
            "TargetNotConnected:http://internal.amazon.com/",
            ServiceErrorKind::TargetNotConnected,
        ),
        ("ThrottlingException", ServiceErrorKind::Throttling),
        ("RequestTimeTooSkewed", ServiceErrorKind::ClockSkew),
        (
            "UnrecognizedClientException",
            ServiceErrorKind::UnrecognizedClient,
        ),
        ("AccessDeniedException", ServiceErrorKind::AccessDenied),
        ("InvalidDocument", ServiceErrorKind::InvalidDocument),
        ("Nonsense", ServiceErrorKind::Other),
    ] {
        let se = e(400, &format!(r#"{{"__type":"{ty}","message":"x"}}"#));
        assert_eq!(se.kind, kind, "{ty}");
        assert_eq!(
            parse_session_answer(
                400,
                format!(r#"{{"__type":"{ty}"}}"#).as_bytes(),
                &mut [0; 64],
                Endpoints::Aws
            ),
            Err(Error::Service(ServiceError {
                status: 400,
                kind,
                expired_signature: false
            }))
        );
    }
    assert!(!e(400, r#"{"__type":"ExpiredTokenException"}"#).is_clock_skew(0, Some(1 << 40)));
    for (msg, hit) in [
        ("SIGNATURE EXPIRED: x", true),
        ("ssignature expired", true),
        ("signature expire", false),
        ("signature  expired", false),
        ("xsignature not yet currentx", true),
        ("signature not yet curren", false),
    ] {
        let body = format!(r#"{{"__type":"InvalidSignatureException","message":"{msg}"}}"#);
        assert_eq!(e(400, &body).expired_signature, hit, "{msg}");
    }
    // Not JSON, or not AWS's: typed by status.
    assert_eq!(e(503, "<html>").kind, ServiceErrorKind::InternalServer);
    assert_eq!(e(400, "").kind, ServiceErrorKind::Other);
    assert_eq!(e(400, r#"{"__type":1}"#).kind, ServiceErrorKind::Other);
    // The error keeps nothing of the message.
    let d = format!("{:?} {}", skewed, Error::Service(skewed));
    assert!(!d.contains("20150830"), "{d}");
}

#[test]
fn resume_answers() {
    let mut scratch = [0u8; 512];
    for body in [
        r#"{"SessionId":"s-1","StreamUrl":"","TokenValue":""}"#,
        r#"{"SessionId":"s-1","TokenValue":null}"#,
        r#"{"SessionId":"s-1"}"#,
    ] {
        assert_eq!(
            parse_session_answer(200, body.as_bytes(), &mut scratch, Endpoints::Aws),
            Err(Error::SessionEnded),
            "{body}"
        );
    }
    // A token but a URL pointing elsewhere: refused by the model's checks.
    let evil = r#"{"SessionId":"s-1","StreamUrl":"wss://evil.example/v1/data-channel/s-1","TokenValue":"t"}"#;
    assert!(matches!(
        parse_session_answer(200, evil.as_bytes(), &mut scratch, Endpoints::Aws),
        Err(Error::Answer(model::Error::Url(_)))
    ));
    assert!(matches!(
        parse_session_answer(200, b"{not json", &mut scratch, Endpoints::Aws),
        Err(Error::Answer(_))
    ));
}

#[test]
fn http_dates() {
    for (text, secs) in [
        ("Thu, 01 Jan 1970 00:00:00 GMT", Some(0)),
        ("Sun, 06 Nov 1994 08:49:37 GMT", Some(784_111_777)),
        ("Tue, 29 Feb 2000 23:59:59 GMT", Some(951_868_799)),
        ("Tue, 01 Dec 2026 22:01:46 GMT", Some(1_796_162_506)),
        ("Fri, 31 Dec 9999 23:59:59 GMT", Some(253_402_300_799)),
        // Wrong weekday, impossible dates, obsolete formats, junk.
        ("Mon, 06 Nov 1994 08:49:37 GMT", None),
        ("Tue, 29 Feb 2001 00:00:00 GMT", None),
        ("Sun, 31 Apr 1994 00:00:00 GMT", None),
        ("Sun, 06 Nov 1994 24:00:00 GMT", None),
        ("Sunday, 06-Nov-94 08:49:37 GMT", None),
        ("Sun Nov  6 08:49:37 1994", None),
        ("Sun, 06 Nov 1994 08:49:37 UTC", None),
        ("Sun, +6 Nov 1994 08:49:37 GMT", None),
        ("", None),
        ("Sué 06 Nov 1994 08:49:37 GMT", None),
        ("Sun, 06 Né 1994 08:49:37 GMT", None),
        ("Sun, 06 Nov 1994 08:4é7 GMT", None),
        ("Sun, 06 Nov 1994 08:49:37 GMTé", None),
    ] {
        assert_eq!(http::parse_http_date(text), secs, "{text}");
    }
    // Agrees with the signer's formatter.
    let d = crate::sigv4::AmzDate::from_unix_secs(1_796_162_506).unwrap();
    assert_eq!(d.as_str(), "20261201T220146Z");
}

/// Feeds `raw` in pieces cut at `cuts`; any outcome but a panic or a body past `cap` is fine.
fn parse_in_pieces(raw: &[u8], cuts: &[usize], cap: usize) -> Result<Vec<u8>, HttpError> {
    let mut filled = 0;
    let mut cuts = cuts.iter().copied();
    let head = loop {
        if let Some(h) = http::parse_head(&raw[..filled])? {
            break h;
        }
        if filled == raw.len() {
            return Err(HttpError::Truncated);
        }
        filled = (filled + cuts.next().unwrap_or(7).max(1)).min(raw.len());
    };
    assert!(head.len <= filled);
    let mut body = vec![0u8; cap];
    let mut dec = BodyDecoder::new(&head, cap)?;
    let mut pos = head.len;
    while pos < raw.len() {
        let end = (pos + cuts.next().unwrap_or(7).max(1)).min(raw.len());
        let p = dec.feed(&raw[pos..end], &mut body)?;
        assert!(p.consumed <= end - pos);
        assert!(dec.len() <= cap);
        pos += p.consumed;
        if p.done {
            body.truncate(dec.len());
            return Ok(body);
        }
    }
    dec.finish()?;
    body.truncate(dec.len());
    Ok(body)
}

proptest::proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(
        raw in proptest::collection::vec(proptest::num::u8::ANY, 0..400),
        cuts in proptest::collection::vec(1usize..64, 0..20),
        cap in 0usize..128,
    ) {
        let _ = parse_in_pieces(&raw, &cuts, cap);
        let _ = ServiceError::parse(400, &raw);
        let _ = parse_session_answer(200, &raw, &mut [0u8; 512], Endpoints::Aws);
        if let Ok(s) = core::str::from_utf8(&raw) {
            let _ = http::parse_http_date(s);
        }
    }

    #[test]
    fn mutated_chunked_answers_never_panic_and_good_ones_decode(
        pieces in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 1..40), 0..6),
        flip in proptest::option::of((0usize..400, proptest::num::u8::ANY)),
        cuts in proptest::collection::vec(1usize..32, 0..20),
    ) {
        let mut raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        let mut want = Vec::new();
        for p in &pieces {
            raw.extend_from_slice(format!("{:x}\r\n", p.len()).as_bytes());
            raw.extend_from_slice(p);
            raw.extend_from_slice(b"\r\n");
            want.extend_from_slice(p);
        }
        raw.extend_from_slice(b"0\r\n\r\n");
        match flip {
            None => {
                let got = parse_in_pieces(&raw, &cuts, 256).unwrap();
                proptest::prop_assert_eq!(got, want);
            }
            Some((at, b)) => {
                let at = at % raw.len();
                raw[at] = b;
                let _ = parse_in_pieces(&raw, &cuts, 256);
            }
        }
    }
}
