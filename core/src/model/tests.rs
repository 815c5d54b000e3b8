use std::format;
use std::string::{String, ToString};
use std::vec;
use std::vec::Vec;

use proptest::prelude::*;

use super::*;

const SID: &str = "user-0123456789abcdef0";
const TOKEN: &str = "AAEAAbKr0Vx1SECRETtoken+/=zz";

fn url_for(host: &str) -> String {
    format!("wss://{host}/v1/data-channel/{SID}?role=publish_subscribe")
}

fn json(sid: &str, url: &str, token: &str) -> String {
    format!(r#"{{"SessionId":"{sid}","StreamUrl":"{url}","TokenValue":"{token}"}}"#)
}

fn seed() -> String {
    json(SID, &url_for("ssmmessages.us-east-1.amazonaws.com"), TOKEN)
}

fn url_err(host_url: &str) -> Error {
    StreamUrl::parse(host_url, SID).unwrap_err()
}

/// Every error's text and debug form, checked for the token.
fn assert_no_token(e: &Error) {
    assert!(!format!("{e}").contains(TOKEN));
    assert!(!format!("{e:?}").contains(TOKEN));
    assert!(!format!("{e}").contains("SECRET"));
}

#[test]
fn seed_shape() {
    let j = seed();
    let r = StartSessionResponse::parse(j.as_bytes()).unwrap();
    assert_eq!(r.session_id(), SID);
    assert_eq!(r.token().expose_secret(), TOKEN);
    let u = r.stream_url();
    assert_eq!(u.scheme(), Scheme::Wss);
    assert_eq!(u.host(), "ssmmessages.us-east-1.amazonaws.com");
    assert_eq!(u.port(), 443);
    assert_eq!(u.region(), Some("us-east-1"));
    assert_eq!(u.partition(), Some(Partition::Aws));
    assert!(!u.is_fips());
    assert!(u.is_aws());
    assert_eq!(u.session_id(), SID);
    assert_eq!(
        u.path_and_query(),
        format!("/v1/data-channel/{SID}?role=publish_subscribe")
    );
    assert_eq!(u.query(), Some("role=publish_subscribe"));
}

#[test]
fn partitions_and_fips() {
    let cases = [
        (
            "ssmmessages.cn-north-1.amazonaws.com.cn",
            "cn-north-1",
            Partition::AwsCn,
            false,
        ),
        (
            "ssmmessages.cn-northwest-1.amazonaws.com.cn",
            "cn-northwest-1",
            Partition::AwsCn,
            false,
        ),
        (
            "ssmmessages-fips.us-east-2.amazonaws.com",
            "us-east-2",
            Partition::Aws,
            true,
        ),
        (
            "ssmmessages.us-gov-west-1.amazonaws.com",
            "us-gov-west-1",
            Partition::AwsUsGov,
            false,
        ),
        (
            "ssmmessages-fips.us-gov-east-1.amazonaws.com",
            "us-gov-east-1",
            Partition::AwsUsGov,
            true,
        ),
        (
            "ssmmessages.ap-southeast-5.amazonaws.com",
            "ap-southeast-5",
            Partition::Aws,
            false,
        ),
    ];
    for (host, region, partition, fips) in cases {
        let url = url_for(host);
        let u = StreamUrl::parse(&url, SID).unwrap();
        assert_eq!(u.region(), Some(region), "{host}");
        assert_eq!(u.partition(), Some(partition), "{host}");
        assert_eq!(u.is_fips(), fips, "{host}");
        assert_eq!(u.host(), host);
    }
    assert_eq!(Partition::AwsUsGov.as_str(), "aws-us-gov");
    assert_eq!(Partition::AwsCn.to_string(), "aws-cn");
    assert_eq!(Partition::AwsCn.dns_suffix(), "amazonaws.com.cn");
}

#[test]
fn rejects_foreign_hosts() {
    for host in [
        "evil.example.com",
        "ssmmessages.us-east-1.amazonaws.com.evil.com",
        "ssmmessages.us-east-1.amazonaws.co",
        "ssmmessages.us-east-1.amazonaws.com.",
        "xssmmessages.us-east-1.amazonaws.com",
        "ssm.us-east-1.amazonaws.com",
        "ssmmessages-fipsx.us-east-1.amazonaws.com",
        "ssmmessages.amazonaws.com",
        "SSMMESSAGES.US-EAST-1.AMAZONAWS.COM",
        "127.0.0.1",
        "localhost",
        "[::1]",
        "ssmmessages.us-east-1.amazonaws.com@evil.com",
        "evil.com@ssmmessages.us-east-1.amazonaws.com",
    ] {
        assert_eq!(
            url_err(&url_for(host)),
            Error::Url(UrlError::BadHost),
            "{host}"
        );
    }
    assert_eq!(url_err(&url_for("")), Error::Url(UrlError::BadHost));
}

#[test]
fn rejects_bad_regions() {
    for host in [
        "ssmmessages.cn-north-1.amazonaws.com",
        "ssmmessages.us-east-1.amazonaws.com.cn",
        "ssmmessages.us-east.amazonaws.com",
        "ssmmessages.us-east-1-.amazonaws.com",
        "ssmmessages.u-east-1.amazonaws.com",
        "ssmmessages.us--1.amazonaws.com",
        "ssmmessages.east1.amazonaws.com",
    ] {
        assert_eq!(
            url_err(&url_for(host)),
            Error::Url(UrlError::BadRegion),
            "{host}"
        );
    }
}

#[test]
fn schemes_ports_paths() {
    let good = url_for("ssmmessages.us-east-1.amazonaws.com");
    let ws = good.replacen("wss://", "ws://", 1);
    assert_eq!(url_err(&ws), Error::Url(UrlError::BadScheme));
    assert_eq!(
        url_err(&good.replacen("wss://", "https://", 1)),
        Error::Url(UrlError::BadScheme)
    );
    assert_eq!(
        url_err(&good.replacen("wss://", "", 1)),
        Error::Url(UrlError::BadScheme)
    );
    let upper = good.replacen("wss://", "WSS://", 1);
    assert!(StreamUrl::parse(&upper, SID).is_ok());

    let host = "ssmmessages.us-east-1.amazonaws.com";
    let with_port = |p: &str| good.replacen(host, &format!("{host}:{p}"), 1);
    assert_eq!(
        StreamUrl::parse(&with_port("443"), SID).unwrap().port(),
        443
    );
    for p in ["8443", "", "0", "65536", "99999999", "44a", "-1"] {
        assert_eq!(url_err(&with_port(p)), Error::Url(UrlError::BadPort), "{p}");
    }

    let base = format!("wss://{host}");
    for path in [
        String::new(),
        "/".into(),
        format!("/v2/data-channel/{SID}"),
        "/v1/data-channel/".into(),
        format!("/v1/data-channel/{SID}/x"),
        format!("/v1/data-channel//{SID}"),
        format!("?x=/v1/data-channel/{SID}"),
    ] {
        assert_eq!(
            url_err(&format!("{base}{path}")),
            Error::Url(UrlError::BadPath),
            "{path}"
        );
    }
    assert_eq!(
        url_err(&format!("{base}/v1/data-channel/user-other")),
        Error::Url(UrlError::SessionIdMismatch)
    );
    // No query at all is fine; the query is opaque.
    let u = format!("{base}/v1/data-channel/{SID}");
    assert_eq!(StreamUrl::parse(&u, SID).unwrap().query(), None);
    let u = format!("{base}/v1/data-channel/{SID}?a=1&b=%2F&role=x?y");
    assert_eq!(
        StreamUrl::parse(&u, SID).unwrap().query(),
        Some("a=1&b=%2F&role=x?y")
    );

    assert_eq!(
        url_err(&format!("{good}#frag")),
        Error::Url(UrlError::Fragment)
    );
    for bad in [
        " ",
        "\r\nHost: evil",
        "\"",
        "\\",
        "<",
        "\u{e9}",
        "\0",
        "{",
        "|",
    ] {
        assert_eq!(
            url_err(&format!("{good}{bad}")),
            Error::Url(UrlError::BadCharacter),
            "{bad:?}"
        );
    }
}

#[test]
fn session_id_rules() {
    let host = "ssmmessages.us-east-1.amazonaws.com";
    for bad in ["", "a b", "a/b", "é", "a%2Fb", &"a".repeat(97)] {
        let u = format!("wss://{host}/v1/data-channel/{bad}");
        assert_eq!(
            StreamUrl::parse(&u, bad).unwrap_err(),
            Error::BadSessionId,
            "{bad}"
        );
    }
    let ok = "Admin.User@corp,x=y+z_1-0123456789abcdef0";
    let u = format!("wss://{host}/v1/data-channel/{ok}");
    assert_eq!(StreamUrl::parse(&u, ok).unwrap().session_id(), ok);
    let max = "a".repeat(96);
    let u = format!("wss://{host}/v1/data-channel/{max}");
    assert!(StreamUrl::parse(&u, &max).is_ok());
}

#[test]
fn dangerous_any_host() {
    let cases = [
        (
            format!("ws://127.0.0.1:8080/v1/data-channel/{SID}"),
            Scheme::Ws,
            "127.0.0.1",
            8080,
        ),
        (
            format!("ws://localhost/v1/data-channel/{SID}?q"),
            Scheme::Ws,
            "localhost",
            80,
        ),
        (
            format!("wss://localhost/v1/data-channel/{SID}"),
            Scheme::Wss,
            "localhost",
            443,
        ),
        (
            format!("ws://[::1]:9000/v1/data-channel/{SID}"),
            Scheme::Ws,
            "[::1]",
            9000,
        ),
        (
            format!("wss://emulator.test:1/v1/data-channel/{SID}"),
            Scheme::Wss,
            "emulator.test",
            1,
        ),
    ];
    for (url, scheme, host, port) in &cases {
        assert!(
            StreamUrl::parse(url, SID).is_err(),
            "{url} must need the dangerous option"
        );
        let u = StreamUrl::dangerous_parse_any_host(url, SID).unwrap();
        assert_eq!(u.scheme(), *scheme);
        assert_eq!(u.host(), *host);
        assert_eq!(u.port(), *port);
        assert_eq!(u.region(), None);
        assert_eq!(u.partition(), None);
        assert!(!u.is_aws());
        assert_eq!(u.session_id(), SID);
    }
    // Still a data-channel path, still no userinfo or other schemes.
    let d = |u: &str| StreamUrl::dangerous_parse_any_host(u, SID).unwrap_err();
    assert_eq!(d("ws://127.0.0.1:8080/"), Error::Url(UrlError::BadPath));
    assert_eq!(
        d(&format!("http://127.0.0.1/v1/data-channel/{SID}")),
        Error::Url(UrlError::BadScheme)
    );
    assert_eq!(
        d(&format!("ws://a@127.0.0.1/v1/data-channel/{SID}")),
        Error::Url(UrlError::BadHost)
    );
    assert_eq!(
        d(&format!("ws://127.0.0.1:0/v1/data-channel/{SID}")),
        Error::Url(UrlError::BadPort)
    );
    // An AWS host under the dangerous option still reports its region.
    let u = url_for("ssmmessages.eu-west-1.amazonaws.com");
    let u = StreamUrl::dangerous_parse_any_host(&u, SID).unwrap();
    assert_eq!(u.region(), Some("eu-west-1"));

    let j = json(SID, &cases[0].0, TOKEN);
    assert_eq!(
        StartSessionResponse::parse(j.as_bytes()).unwrap_err(),
        Error::Url(UrlError::BadScheme)
    );
    let r =
        StartSessionResponse::parse_with(j.as_bytes(), None, Endpoints::DangerousAnyHost).unwrap();
    assert_eq!(r.stream_url().port(), 8080);
}

#[test]
fn escaped_values() {
    // AWS JSON emitters escape `/` as `\/`.
    let url = url_for("ssmmessages.us-east-1.amazonaws.com");
    let esc_url = url.replace('/', "\\/");
    let esc_tok = TOKEN.replace('/', "\\/").replace('+', "\\u002B");
    let j = json(SID, &esc_url, &esc_tok);

    assert_eq!(
        StartSessionResponse::parse(j.as_bytes()).unwrap_err(),
        Error::Escaped
    );

    let mut scratch = vec![0u8; j.len()];
    let r = StartSessionResponse::parse_unescaped(j.as_bytes(), &mut scratch).unwrap();
    assert_eq!(r.stream_url().as_str(), url);
    assert_eq!(r.token().expose_secret(), TOKEN);
    assert_eq!(r.session_id(), SID);

    let o = OwnedStartSessionResponse::<256, 64>::parse(j.as_bytes()).unwrap();
    assert_eq!(o.stream_url().as_str(), url);
    assert_eq!(o.token().expose_secret(), TOKEN);

    // The unescaped values need url.len() + TOKEN.len() bytes; one less fails cleanly.
    let need = url.len() + TOKEN.len();
    let mut small = vec![0u8; need - 1];
    assert_eq!(
        StartSessionResponse::parse_unescaped(j.as_bytes(), &mut small).unwrap_err(),
        Error::ScratchTooSmall
    );
    let mut exact = vec![0u8; need];
    assert!(StartSessionResponse::parse_unescaped(j.as_bytes(), &mut exact).is_ok());

    // Escaped quote/backslash/control characters decode to values the validators refuse.
    for (tok, err) in [
        (r#"ab\"cd"#, Error::BadToken),
        (r"ab\\cd", Error::BadToken),
        (r"ab\ncd", Error::BadToken),
        (r"ab\u0000cd", Error::BadToken),
        (r"ab\xcd", Error::BadEscape),
        (r"ab\u12", Error::BadEscape),
        // A surrogate pair is valid JSON (one character, here outside visible ASCII); a lone
        // surrogate is not.
        (r"ab\ud83d\ude00", Error::BadToken),
        (r"ab\ud83dcd", Error::BadEscape),
    ] {
        let j = json(SID, &url, tok);
        let e = OwnedStartSessionResponse::<256, 64>::parse(j.as_bytes()).unwrap_err();
        assert_eq!(e, err, "{tok}");
        let mut s = [0u8; 512];
        let e2 = StartSessionResponse::parse_unescaped(j.as_bytes(), &mut s).unwrap_err();
        assert_eq!(e2, err, "{tok}");
    }
    // A session id escaped into something else is checked after unescaping.
    let j = json(r"user\u002Fx", &url, TOKEN);
    assert_eq!(
        OwnedStartSessionResponse::<256, 64>::parse(j.as_bytes()).unwrap_err(),
        Error::BadSessionId
    );
    let j = json(r"user-0123456789abcdef\u0030", &url, TOKEN);
    assert_eq!(
        OwnedStartSessionResponse::<256, 64>::parse(j.as_bytes())
            .unwrap()
            .session_id(),
        SID
    );
}

#[test]
fn escaped_keys_mean_the_same_key() {
    let url = url_for("ssmmessages.us-east-1.amazonaws.com");
    let j =
        format!(r#"{{"Session\u0049d":"{SID}","Stream\u0055rl":"{url}","TokenValue":"{TOKEN}"}}"#);
    let r = StartSessionResponse::parse(j.as_bytes()).unwrap();
    assert_eq!(r.session_id(), SID);
    // An escaped duplicate of a plain key is a duplicate, as a standard parser sees it.
    let j = format!(
        r#"{{"SessionId":"{SID}","StreamUrl":"{url}","TokenValue":"{TOKEN}","Token\u0056alue":"other"}}"#
    );
    assert_eq!(
        StartSessionResponse::parse(j.as_bytes()).unwrap_err(),
        Error::Duplicate(Field::TokenValue)
    );
    let j = format!(r#"{{"SessionId":"{SID}","StreamUrl":"{url}","TokenValue":"{TOKEN}","\q":1}}"#);
    assert_eq!(
        StartSessionResponse::parse(j.as_bytes()).unwrap_err(),
        Error::BadEscape
    );
}

#[test]
fn missing_extra_duplicate_fields() {
    let url = url_for("ssmmessages.us-east-1.amazonaws.com");
    let full = [
        ("SessionId", SID),
        ("StreamUrl", url.as_str()),
        ("TokenValue", TOKEN),
    ];
    for (i, field) in Field::ALL.iter().enumerate() {
        let body: Vec<String> = full
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, (k, v))| format!(r#""{k}":"{v}""#))
            .collect();
        let j = format!("{{{}}}", body.join(","));
        let e = StartSessionResponse::parse(j.as_bytes()).unwrap_err();
        assert_eq!(e, Error::Missing(*field));
        assert!(e.to_string().contains(field.key()));
    }
    // Unknown keys of every JSON kind, including the CLI's ResponseMetadata, are ignored.
    let j = format!(
        r#"  {{ "ResponseMetadata": {{"RequestId":"r-1","HTTPStatusCode":200,"HTTPHeaders":{{"x":"a\"b\\c\/"}},"RetryAttempts":0}},
          "SessionId" : "{SID}", "n": -1.5e3, "t": true, "f": false, "z": null, "a": [1, [2, {{}}], "]"],
          "StreamUrl": "{url}", "TokenValue": "{TOKEN}", "Extra": "{{not an object" }}  "#
    );
    let r = StartSessionResponse::parse(j.as_bytes()).unwrap();
    assert_eq!(r.session_id(), SID);
    assert_eq!(r.token().expose_secret(), TOKEN);

    let j = format!(
        r#"{{"SessionId":"{SID}","SessionId":"{SID}","StreamUrl":"{url}","TokenValue":"{TOKEN}"}}"#
    );
    assert_eq!(
        StartSessionResponse::parse(j.as_bytes()).unwrap_err(),
        Error::Duplicate(Field::SessionId)
    );
}

#[test]
fn hostile_json() {
    let url = url_for("ssmmessages.us-east-1.amazonaws.com");
    let deep = |n: usize| {
        format!(
            r#"{{"x":{}1{},"SessionId":"{SID}","StreamUrl":"{url}","TokenValue":"{TOKEN}"}}"#,
            "[".repeat(n),
            "]".repeat(n)
        )
    };
    assert!(StartSessionResponse::parse(deep(MAX_JSON_DEPTH - 1).as_bytes()).is_ok());
    assert_eq!(
        StartSessionResponse::parse(deep(MAX_JSON_DEPTH).as_bytes()).unwrap_err(),
        Error::TooDeep
    );
    assert_eq!(
        StartSessionResponse::parse(deep(100_000).as_bytes()).unwrap_err(),
        Error::TooDeep
    );
    assert_eq!(
        StartSessionResponse::parse(r#"{"a":"#.repeat(100_000).as_bytes()).unwrap_err(),
        Error::TooDeep
    );
    // Brackets inside strings do not count.
    let j = format!(
        r#"{{"x":"{}","SessionId":"{SID}","StreamUrl":"{url}","TokenValue":"{TOKEN}"}}"#,
        "[".repeat(1000)
    );
    assert!(StartSessionResponse::parse(j.as_bytes()).is_ok());

    for bad in [
        String::new(),
        "null".into(),
        "[]".into(),
        "\"x\"".into(),
        "{".into(),
        "}".into(),
        format!("{}garbage", seed()),
        format!("{},", seed()),
        json(SID, &url, TOKEN).replace(&format!("\"{SID}\""), "12"),
        json(SID, &url, TOKEN).replace(&format!("\"{SID}\""), "[\"a\"]"),
        r#"{"SessionId" "x"}"#.into(),
        r#"{1:2}"#.into(),
        r#"{"a":1,}"#.into(),
    ] {
        let e = StartSessionResponse::parse(bad.as_bytes()).unwrap_err();
        assert_eq!(e, Error::Json, "{bad}");
    }
    // `null` reads as absent, as for every payload.
    let null_sid = json(SID, &url, TOKEN).replace(&format!("\"{SID}\""), "null");
    assert_eq!(
        StartSessionResponse::parse(null_sid.as_bytes()).unwrap_err(),
        Error::Missing(Field::SessionId)
    );
    // A lenient reader (serde-json-core, used here before) skips `a"...` up to the next comma and would then recurse into the
    // brackets hidden from a string-aware depth scan; the strict pre-check refuses it.
    let sneaky = format!(
        r#"{{"x": a", "y": {}1{}, "SessionId":"{SID}","StreamUrl":"{url}","TokenValue":"{TOKEN}"}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    assert_eq!(
        StartSessionResponse::parse(sneaky.as_bytes()).unwrap_err(),
        Error::Json
    );
    let lax =
        format!(r#"{{"x": a[[, "SessionId":"{SID}","StreamUrl":"{url}","TokenValue":"{TOKEN}"}}"#);
    assert_eq!(
        StartSessionResponse::parse(lax.as_bytes()).unwrap_err(),
        Error::Json
    );
    // A raw control character inside a string is not JSON.
    let raw_ctl = json(SID, &url, "ab\u{1}c");
    assert_eq!(
        StartSessionResponse::parse(raw_ctl.as_bytes()).unwrap_err(),
        Error::Json
    );

    let mut bytes = seed().into_bytes();
    let pos = bytes.len() - 5;
    bytes[pos] = 0xff;
    assert!(StartSessionResponse::parse(&bytes).is_err());

    // Every truncation of a valid response fails without panicking, and leaks nothing.
    let j = seed();
    for n in 0..j.len() {
        let e = StartSessionResponse::parse(&j.as_bytes()[..n]).unwrap_err();
        assert_no_token(&e);
        let e = OwnedStartSessionResponse::<256, 64>::parse(&j.as_bytes()[..n]).unwrap_err();
        assert_no_token(&e);
    }
}

#[test]
fn token_is_redacted() {
    let j = seed();
    let r = StartSessionResponse::parse(j.as_bytes()).unwrap();
    let o = OwnedStartSessionResponse::<256, 64>::parse(j.as_bytes()).unwrap();
    let expect = format!("Token(<redacted, {} bytes>)", TOKEN.len());
    assert_eq!(format!("{:?}", r.token()), expect);
    assert_eq!(format!("{}", r.token()), expect);
    assert_eq!(format!("{:?}", o.token()), expect);
    assert_eq!(format!("{}", o.token), expect);
    for s in [format!("{r:?}"), format!("{r:#?}"), format!("{o:?}")] {
        assert!(!s.contains(TOKEN), "{s}");
        assert!(!s.contains("SECRET"), "{s}");
        assert!(s.contains(SID), "{s}");
        assert!(s.contains(&expect), "{s}");
    }
    // Errors about the token never carry it, whatever is wrong with it.
    for tok in [
        format!("{TOKEN} x"),
        format!("{TOKEN}\\x"),
        format!("{TOKEN}\\\""),
    ] {
        let j = json(SID, &url_for("ssmmessages.us-east-1.amazonaws.com"), &tok);
        let e = StartSessionResponse::parse(j.as_bytes()).unwrap_err();
        assert_no_token(&e);
        let e = OwnedStartSessionResponse::<256, 64>::parse(j.as_bytes()).unwrap_err();
        assert_no_token(&e);
    }
    let j = json(
        SID,
        &url_for("ssmmessages.us-east-1.amazonaws.com"),
        &"A".repeat(65),
    );
    assert_eq!(
        OwnedStartSessionResponse::<256, 64>::parse(j.as_bytes()).unwrap_err(),
        Error::TooLong
    );
}

#[test]
fn presigned_query_is_redacted_in_debug() {
    let q = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=deadbeefSIG";
    let url = format!("wss://ssmmessages.us-east-1.amazonaws.com/v1/data-channel/{SID}?{q}");
    let u = StreamUrl::parse(&url, SID).unwrap();
    assert_eq!(u.query(), Some(q));
    let d = format!("{u:?}");
    assert!(!d.contains("deadbeefSIG"), "{d}");
    assert!(d.contains(SID));
    let plain = url_for("ssmmessages.us-east-1.amazonaws.com");
    let d = format!("{:?}", StreamUrl::parse(&plain, SID).unwrap());
    assert!(d.contains("role=publish_subscribe"), "{d}");
}

#[test]
fn token_rules_and_equality() {
    assert!(Token::new("").is_err());
    assert!(Token::new("a b").is_err());
    assert!(Token::new("a\"b").is_err());
    assert!(Token::new("é").is_err());
    let a = Token::new("abc").unwrap();
    assert_eq!(a, Token::new("abc").unwrap());
    assert_ne!(a, Token::new("abd").unwrap());
    assert_ne!(a, Token::new("abcd").unwrap());
}

#[test]
fn emit_round_trip() {
    let j = seed();
    let r = StartSessionResponse::parse(j.as_bytes()).unwrap();
    let mut buf = [0u8; 512];
    let n = r.emit(&mut buf).unwrap();
    assert_eq!(n, r.json_len());
    assert_eq!(&buf[..n], j.as_bytes());
    let mut small = vec![0u8; n - 1];
    assert_eq!(r.emit(&mut small), Err(InsufficientSize { required: n }));

    let o = OwnedStartSessionResponse::<256, 64>::from_borrowed(&r).unwrap();
    assert_eq!(o.as_borrowed(), r);
    let o2 = OwnedStartSessionResponse::<256, 64>::parse(j.as_bytes()).unwrap();
    assert_eq!(o, o2);
    let mut buf2 = [0u8; 512];
    let n2 = o.as_borrowed().emit(&mut buf2).unwrap();
    assert_eq!(&buf2[..n2], j.as_bytes());
    assert_eq!(
        OwnedStartSessionResponse::<64, 64>::from_borrowed(&r).unwrap_err(),
        Error::TooLong
    );
    assert_eq!(
        OwnedStartSessionResponse::<256, 8>::from_borrowed(&r).unwrap_err(),
        Error::TooLong
    );
}

/// JSON-escapes `s`, choosing per character among plain, `\/`, and `\uXXXX`.
fn escape_with(s: &str, choices: &[u8]) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        match (choices.get(i).copied().unwrap_or(0) % 3, c) {
            (1, '/') => out.push_str("\\/"),
            (2, _) => out.push_str(&format!("\\u{:04X}", c as u32)),
            _ => out.push(c),
        }
    }
    out
}

proptest! {
    /// Whatever escapes an emitter chooses, the owned parse, the scratch parse and a standard
    /// JSON parser agree on the values.
    #[test]
    fn escapes_decode_like_serde_json(
        sid in "[A-Za-z0-9_+=,.@-]{1,96}",
        tok in "[A-Za-z0-9+/=]{1,200}",
        query in "[a-z=&_/%0-9A-F-]{0,100}",
        region in "(us|eu|ap|cn|us-gov)-(east|west|north|southeast)-[1-9]",
        choices in proptest::collection::vec(any::<u8>(), 0..400),
    ) {
        let suffix = if region.starts_with("cn-") { "amazonaws.com.cn" } else { "amazonaws.com" };
        let url = format!("wss://ssmmessages.{region}.{suffix}/v1/data-channel/{sid}?{query}");
        let j = json(&escape_with(&sid, &choices), &escape_with(&url, &choices[choices.len() / 2..]), &escape_with(&tok, &choices[choices.len() / 3..]));
        let v: serde_json::Value = serde_json::from_str(&j).unwrap();
        prop_assert_eq!(v["SessionId"].as_str().unwrap(), sid.as_str());
        prop_assert_eq!(v["StreamUrl"].as_str().unwrap(), url.as_str());
        prop_assert_eq!(v["TokenValue"].as_str().unwrap(), tok.as_str());

        let o = OwnedStartSessionResponse::<512, 256>::parse(j.as_bytes()).unwrap();
        prop_assert_eq!(o.session_id(), sid.as_str());
        prop_assert_eq!(o.stream_url().as_str(), url.as_str());
        prop_assert_eq!(o.token().expose_secret(), tok.as_str());
        prop_assert_eq!(o.stream_url().region(), Some(region.as_str()));

        let mut scratch = vec![0u8; j.len()];
        let r = StartSessionResponse::parse_unescaped(j.as_bytes(), &mut scratch).unwrap();
        prop_assert_eq!(r.stream_url().as_str(), url.as_str());
        prop_assert_eq!(r.token().expose_secret(), tok.as_str());

        let mut out = vec![0u8; r.json_len()];
        let n = r.emit(&mut out).unwrap();
        let back: serde_json::Value = serde_json::from_slice(&out[..n]).unwrap();
        prop_assert_eq!(back, v);
    }

    /// Arbitrary bytes never panic the parsers.
    #[test]
    fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = StartSessionResponse::parse(&bytes);
        let mut s = [0u8; 300];
        let _ = StartSessionResponse::parse_unescaped(&bytes, &mut s);
        let _ = OwnedStartSessionResponse::<128, 64>::parse(&bytes);
    }

    /// Arbitrary URLs never panic the URL parser, in either mode.
    #[test]
    fn urls_never_panic(url in "(wss?://)?[ -~]{0,80}", sid in "[a-z-]{0,8}") {
        let _ = StreamUrl::parse(&url, &sid);
        if let Ok(u) = StreamUrl::dangerous_parse_any_host(&url, &sid) {
            let _ = (u.host(), u.port(), u.path_and_query(), u.query(), u.region(), format!("{u:?}"));
        }
    }
}
