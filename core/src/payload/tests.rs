use std::format;
use std::string::{String, ToString};
use std::vec;
use std::vec::Vec;

use proptest::prelude::*;

use super::*;
use crate::uuid::Uuid;
use crate::wire::{FrameRepr, MessageType, PayloadType};

const VECTORS: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/vectors/frames.json"
));

/// Emits into an exact-size buffer, checks every shorter buffer fails untouched, returns bytes.
fn emit_checked(f: impl Fn(&mut [u8]) -> Result<usize, Error>) -> Vec<u8> {
    let mut big = vec![0u8; 64 * 1024];
    let n = f(&mut big).unwrap();
    let mut exact = vec![0u8; n];
    assert_eq!(f(&mut exact), Ok(n));
    assert_eq!(exact, big[..n]);
    for short in [0, n / 2, n.saturating_sub(1)] {
        if short >= n {
            continue;
        }
        let mut b = vec![0x5au8; short];
        assert_eq!(f(&mut b), Err(Error::BufferTooSmall { required: n }));
        assert!(b.iter().all(|&c| c == 0x5a), "short buffer was written");
    }
    exact
}

#[test]
fn official_ack_payloads_parse_and_reemit() {
    let v: serde_json::Value = serde_json::from_str(VECTORS).unwrap();
    let mut seen = 0;
    for o in v.as_array().unwrap() {
        if o["message_type"] != "acknowledge" {
            continue;
        }
        seen += 1;
        let frame = hex::decode(o["frame_hex"].as_str().unwrap()).unwrap();
        let repr = FrameRepr::parse_bytes(&frame).unwrap();
        assert_eq!(repr.header.payload_type, PayloadType::Null);
        let want: serde_json::Value = serde_json::from_slice(repr.payload).unwrap();
        let ack = Acknowledge::parse(repr.payload).unwrap();
        assert_eq!(
            ack.message_type.as_str(),
            want["AcknowledgedMessageType"].as_str().unwrap()
        );
        assert_eq!(
            format!("{}", ack.message_id),
            want["AcknowledgedMessageId"].as_str().unwrap()
        );
        assert_eq!(
            ack.sequence_number,
            want["AcknowledgedMessageSequenceNumber"].as_i64().unwrap()
        );
        assert_eq!(
            ack.is_sequential,
            want["IsSequentialMessage"].as_bool().unwrap()
        );
        assert_eq!(emit_checked(|b| ack.emit(b)), repr.payload, "{}", o["name"]);
    }
    assert!(seen >= 10, "only {seen} ack vectors");
}

#[test]
fn ack_fields_and_errors() {
    let ok =
        br#" { "acknowledgedmessagetype" : "output_stream_data", "Extra":{"a":[1,2,{"b":null}]},
        "AcknowledgedMessageId":"3970115E-82AA-4778-A667-F7E936CD4F24",
        "AcknowledgedMessageSequenceNumber":-3 } "#;
    let a = Acknowledge::parse(ok).unwrap();
    assert_eq!(a.message_type, MessageType::OutputStreamData);
    assert_eq!(
        a.message_id,
        "3970115e-82aa-4778-a667-f7e936cd4f24"
            .parse::<Uuid>()
            .unwrap()
    );
    assert_eq!(a.sequence_number, -3);
    assert!(!a.is_sequential, "absent reads as Go's zero value");

    let id = "\"AcknowledgedMessageId\":\"3970115e-82aa-4778-a667-f7e936cd4f24\"";
    let t = "\"AcknowledgedMessageType\":\"acknowledge\"";
    let s = "\"AcknowledgedMessageSequenceNumber\":1";
    let cases: [(String, Error); 8] = [
        (
            format!("{{{id},{s}}}"),
            Error::MissingField("AcknowledgedMessageType"),
        ),
        (
            format!("{{{t},{s}}}"),
            Error::MissingField("AcknowledgedMessageId"),
        ),
        (
            format!("{{{t},{id}}}"),
            Error::MissingField("AcknowledgedMessageSequenceNumber"),
        ),
        (
            format!("{{{t},{id},\"AcknowledgedMessageSequenceNumber\":\"1\"}}"),
            Error::WrongType("AcknowledgedMessageSequenceNumber"),
        ),
        (
            format!("{{{t},{id},\"AcknowledgedMessageSequenceNumber\":1.5}}"),
            Error::BadNumber("AcknowledgedMessageSequenceNumber"),
        ),
        (
            format!("{{{t},{id},\"AcknowledgedMessageSequenceNumber\":9223372036854775808}}"),
            Error::BadNumber("AcknowledgedMessageSequenceNumber"),
        ),
        (
            format!("{{{t},{s},\"AcknowledgedMessageId\":\"not-a-uuid\"}}"),
            Error::BadValue("AcknowledgedMessageId"),
        ),
        (
            format!("{{{id},{s},\"AcknowledgedMessageType\":\"\"}}"),
            Error::BadValue("AcknowledgedMessageType"),
        ),
    ];
    for (input, want) in cases {
        assert_eq!(Acknowledge::parse(input.as_bytes()), Err(want), "{input}");
    }
    // i64::MIN is in range.
    let min = format!("{{{t},{id},\"AcknowledgedMessageSequenceNumber\":-9223372036854775808}}");
    assert_eq!(
        Acknowledge::parse(min.as_bytes()).unwrap().sequence_number,
        i64::MIN
    );
    // An escaped message type still reads correctly (unescaped on the stack).
    let esc = format!("{{{id},{s},\"AcknowledgedMessageType\":\"output\\u005fstream_data\"}}");
    assert_eq!(
        Acknowledge::parse(esc.as_bytes()).unwrap().message_type,
        MessageType::OutputStreamData
    );
}

#[test]
fn malformed_json_is_an_error_never_a_panic() {
    let cases: [(&[u8], Error); 16] = [
        (b"", Error::Syntax),
        (b"   ", Error::Syntax),
        (b"[]", Error::WrongType("the payload")),
        (b"\"x\"", Error::WrongType("the payload")),
        (b"{", Error::Syntax),
        (b"{\"cols\":1,\"rows\":2", Error::Syntax),
        (b"{\"cols\":1,\"rows\":2,}", Error::Syntax),
        (b"{\"cols\":1 \"rows\":2}", Error::Syntax),
        (b"{\"cols\":1,\"rows\":2} x", Error::Syntax),
        (b"{\"cols\":01,\"rows\":2}", Error::Syntax),
        (b"{\"cols\":1,\"rows\":tru}", Error::Syntax),
        (b"{\"cols\":1,\"rows\":2,\"x\":\"\x01\"}", Error::Syntax),
        (b"{\"cols\":1,\"rows\":2,\"x\":\"\\q\"}", Error::BadEscape),
        (
            b"{\"cols\":1,\"rows\":2,\"x\":\"\\ud800\"}",
            Error::BadEscape,
        ),
        (
            b"{\"cols\":1,\"rows\":2,\"x\":\"\\udc00\\ud800\"}",
            Error::BadEscape,
        ),
        (b"{\"cols\":1,\"rows\":\xff}", Error::NotUtf8),
    ];
    for (input, want) in cases {
        assert_eq!(
            Size::parse(input),
            Err(want),
            "{}",
            String::from_utf8_lossy(input)
        );
    }
    assert_eq!(
        Size::parse(br#"{"cols":-1,"rows":2}"#),
        Err(Error::BadNumber("cols"))
    );
    assert_eq!(
        Size::parse(br#"{"cols":4294967296,"rows":2}"#),
        Err(Error::BadNumber("cols"))
    );
    assert_eq!(
        Size::parse(br#"{"cols":1e3,"rows":2}"#),
        Err(Error::BadNumber("cols"))
    );
    assert_eq!(
        Size::parse(br#"{"cols":1,"rows":[2]}"#),
        Err(Error::WrongType("rows"))
    );
    assert_eq!(
        Size::parse(br#"{"cols":1}"#),
        Err(Error::MissingField("rows"))
    );
    assert_eq!(
        Size::parse(br#"{"cols":1,"rows":null}"#),
        Err(Error::MissingField("rows"))
    );
    // A key twice is refused (Go keeps the last, other readers the first), also when it differs
    // only in case (keys match ignoring ASCII case, as in Go).
    assert_eq!(
        Size::parse(br#"{"cols":1,"rows":2,"COLS":3}"#),
        Err(Error::DuplicateField("cols"))
    );
    // Huge numbers in ignored keys are fine; huge digit strings in fields are range errors.
    let huge = format!("{{\"cols\":1,\"rows\":2,\"x\":1{}e999}}", "0".repeat(5000));
    assert_eq!(Size::parse(huge.as_bytes()), Ok(Size { cols: 1, rows: 2 }));
    let huge = format!("{{\"cols\":1{},\"rows\":2}}", "0".repeat(5000));
    assert_eq!(Size::parse(huge.as_bytes()), Err(Error::BadNumber("cols")));
}

#[test]
fn deep_nesting_is_refused_without_recursion() {
    for open in ["[", "{\"a\":"] {
        let close = if open == "[" { "]" } else { "}" };
        let ok_depth = json::MAX_DEPTH as usize - 1;
        let mk = |d: usize| {
            format!(
                "{{\"cols\":1,\"rows\":2,\"x\":{}0{}}}",
                open.repeat(d),
                close.repeat(d)
            )
        };
        assert_eq!(
            Size::parse(mk(ok_depth).as_bytes()),
            Ok(Size { cols: 1, rows: 2 })
        );
        assert_eq!(
            Size::parse(mk(ok_depth + 1).as_bytes()),
            Err(Error::TooDeep)
        );
        // A million levels: an error, not a stack overflow.
        let deep = format!("{{\"x\":{}", open.repeat(1_000_000));
        assert_eq!(Size::parse(deep.as_bytes()), Err(Error::TooDeep));
    }
}

#[test]
fn escaped_strings_are_never_silently_wrong() {
    let input = br#"{"HandshakeTimeToComplete":5,"CustomerMessage":"Hi \"you\"\n\u00e9\ud83d\ude00 \u003c/b\u003e"}"#;
    let c = HandshakeComplete::parse(input).unwrap();
    let want = "Hi \"you\"\n\u{e9}\u{1f600} </b>";
    assert!(c.customer_message.has_escapes());
    assert_eq!(c.customer_message.as_str(), Err(Error::EscapedString));
    let mut buf = [0u8; 64];
    assert_eq!(c.customer_message.unescape(&mut buf), Ok(want));
    assert_eq!(c.customer_message.unescaped_len(), want.len());
    let mut small = [0u8; 4];
    assert_eq!(
        c.customer_message.unescape(&mut small),
        Err(Error::BufferTooSmall {
            required: want.len()
        })
    );
    assert_eq!(format!("{}", c.customer_message), want);
    assert!(c.customer_message == want);
    assert_eq!(c.customer_message, JsonStr::new(want));
    // Re-emitting keeps the wire form; a plain string is escaped on emit; both read the same.
    let again = emit_checked(|b| c.emit(b));
    assert_eq!(again, input);
    let plain = HandshakeComplete {
        time_to_complete_ns: 5,
        customer_message: JsonStr::new(want),
    };
    let out = emit_checked(|b| plain.emit(b));
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["CustomerMessage"], want);
    assert_eq!(HandshakeComplete::parse(&out).unwrap(), c);
    // Unescaped text borrows the input.
    let p = HandshakeComplete::parse(br#"{"CustomerMessage":"plain"}"#).unwrap();
    assert_eq!(p.customer_message.as_str(), Ok("plain"));
    assert_eq!(p.time_to_complete_ns, 0);
    assert!(JsonStr::from_escaped(r#"a\"b"#).is_ok());
    assert_eq!(JsonStr::from_escaped(r#"a"b"#).err(), Some(Error::Syntax));
    assert_eq!(JsonStr::from_escaped(r"a\x").err(), Some(Error::BadEscape));
}

const HANDSHAKE_REQUEST: &[u8] = br#"{"AgentVersion":"3.3.40.0","RequestedClientActions":[
 {"ActionType":"SessionType","ActionParameters":{"SessionType":"Port","Properties":{"portNumber":"22","type":"LocalPortForwarding","localPortNumber":0}}},
 {"ActionType":"KMSEncryption","ActionParameters":{"KMSKeyId":"arn:aws:kms:us-east-1:123456789012:key/abc"}},
 {"ActionType":"FutureThing","ActionParameters":[1,{"x":2}]},
 {"ActionType":"Nothing"}
]}"#;

#[test]
fn handshake_request_actions() {
    let r = HandshakeRequest::parse(HANDSHAKE_REQUEST).unwrap();
    assert_eq!(r.agent_version, "3.3.40.0");
    let actions: Vec<Action<'_>> = r.actions().collect();
    assert_eq!(actions.len(), 4);
    let props = r#"{"portNumber":"22","type":"LocalPortForwarding","localPortNumber":0}"#;
    assert_eq!(
        actions[0],
        Action::SessionType {
            session_type: SessionType::Port,
            properties: Some(props)
        }
    );
    assert_eq!(r.session_type(), Some((SessionType::Port, Some(props))));
    assert_eq!(
        r.kms_key_id().unwrap(),
        "arn:aws:kms:us-east-1:123456789012:key/abc"
    );
    match actions[2] {
        Action::Other {
            action_type,
            parameters,
        } => {
            assert_eq!(action_type, "FutureThing");
            assert_eq!(parameters, Some(r#"[1,{"x":2}]"#));
        }
        a => panic!("{a:?}"),
    }
    assert_eq!(
        actions[2].action_type(),
        ActionType::Other(JsonStr::new("FutureThing"))
    );
    assert!(matches!(
        actions[3],
        Action::Other {
            parameters: None,
            ..
        }
    ));

    let p = PortProperties::parse(props.as_bytes()).unwrap();
    assert_eq!(p.port_number, Some(22));
    assert_eq!(p.local_port_number, Some(0));
    assert!(p.is_local_port_forwarding());

    // Emit, parse again: same content; the emitted JSON is valid for serde_json.
    let out = emit_checked(|b| r.emit(b));
    serde_json::from_slice::<serde_json::Value>(&out).unwrap();
    assert_eq!(HandshakeRequest::parse(&out).unwrap(), r);

    // Built from parts.
    let built_actions = [
        Action::SessionType {
            session_type: SessionType::StandardStream,
            properties: None,
        },
        Action::KmsEncryption {
            kms_key_id: JsonStr::new("k\"1"),
            challenge: Some(JsonStr::new("q83vEjRWeJA=")),
        },
    ];
    let built = HandshakeRequest {
        agent_version: JsonStr::new("3.1"),
        requested_client_actions: List::new(&built_actions),
    };
    let out = emit_checked(|b| built.emit(b));
    let back = HandshakeRequest::parse(&out).unwrap();
    assert_eq!(back, built);
    assert_eq!(
        back.session_type(),
        Some((SessionType::StandardStream, None))
    );

    // Raw Properties that are not JSON are refused on emit.
    let bad = [Action::SessionType {
        session_type: SessionType::Port,
        properties: Some("{oops"),
    }];
    let req = HandshakeRequest {
        agent_version: JsonStr::new("1"),
        requested_client_actions: List::new(&bad),
    };
    assert_eq!(req.emit(&mut [0u8; 256]), Err(Error::Syntax));
}

#[test]
fn handshake_request_errors() {
    let cases: [(&[u8], Error); 6] = [
        (br#"{"RequestedClientActions":[]}"#, Error::MissingField("AgentVersion")),
        (
            br#"{"AgentVersion":"1","RequestedClientActions":{}}"#,
            Error::WrongType("RequestedClientActions"),
        ),
        (
            br#"{"AgentVersion":"1","RequestedClientActions":[1]}"#,
            Error::WrongType("RequestedClientActions"),
        ),
        (
            br#"{"AgentVersion":"1","RequestedClientActions":[{"ActionParameters":{}}]}"#,
            Error::MissingField("ActionType"),
        ),
        (
            br#"{"AgentVersion":"1","RequestedClientActions":[{"ActionType":"SessionType","ActionParameters":{}}]}"#,
            Error::MissingField("SessionType"),
        ),
        (
            br#"{"AgentVersion":"1","RequestedClientActions":[{"ActionType":"KMSEncryption","ActionParameters":"x"}]}"#,
            Error::WrongType("ActionParameters"),
        ),
    ];
    for (input, want) in cases {
        assert_eq!(
            HandshakeRequest::parse(input),
            Err(want),
            "{}",
            String::from_utf8_lossy(input)
        );
    }
    // Unknown session types and no actions at all are fine.
    let r = HandshakeRequest::parse(
        br#"{"AgentVersion":"1","RequestedClientActions":[{"ActionType":"SessionType","ActionParameters":{"SessionType":"Teleport","Properties":null}}]}"#,
    )
    .unwrap();
    assert_eq!(r.session_type(), Some((SessionType::Unknown, None)));
    let r = HandshakeRequest::parse(br#"{"AgentVersion":"1"}"#).unwrap();
    assert_eq!(r.actions().count(), 0);
}

#[test]
fn handshake_response_round_trip() {
    let input = br#"{"ClientVersion":"1.2.694.0","ProcessedClientActions":[{"ActionType":"SessionType","ActionStatus":1,"ActionResult":null,"Error":""},{"ActionType":"KMSEncryption","ActionStatus":2,"ActionResult":{"KMSCipherTextKey":"a2V5","KMSCipherTextHash":"aGFzaA=="},"Error":"denied"},{"ActionType":"X","ActionStatus":3,"ActionResult":[true],"Error":""}],"Errors":["one","t\"wo"]}"#;
    let r = HandshakeResponse::parse(input).unwrap();
    assert_eq!(r.client_version, "1.2.694.0");
    let p: Vec<ProcessedAction<'_>> = r.processed_client_actions.iter().collect();
    assert_eq!(p.len(), 3);
    assert_eq!(p[0].action_type, ActionType::SessionType);
    assert_eq!(p[0].status, ActionStatus::Success);
    assert_eq!(p[0].result, ActionResult::None);
    assert_eq!(p[1].status, ActionStatus::Failed);
    assert_eq!(
        p[1].result,
        ActionResult::Kms {
            cipher_text_key: JsonStr::new("a2V5"),
            cipher_text_hash: JsonStr::new("aGFzaA=="),
            challenge_acknowledgement: false,
        }
    );
    assert_eq!(p[1].error, "denied");
    assert_eq!(p[2].status, ActionStatus::Unsupported);
    assert_eq!(p[2].result, ActionResult::Other("[true]"));
    let errors: Vec<JsonStr<'_>> = r.errors.iter().collect();
    assert_eq!(errors, [JsonStr::new("one"), JsonStr::new("t\"wo")]);
    // Key order and spelling of the official client: byte-identical re-emit.
    assert_eq!(emit_checked(|b| r.emit(b)), input);

    let minimal = HandshakeResponse {
        client_version: JsonStr::new("1.2.3.4"),
        processed_client_actions: List::new(&[ProcessedAction {
            action_type: ActionType::SessionType,
            status: ActionStatus::Success,
            result: ActionResult::None,
            error: JsonStr::EMPTY,
        }]),
        errors: List::empty(),
    };
    let out = emit_checked(|b| minimal.emit(b));
    assert_eq!(
        out,
        br#"{"ClientVersion":"1.2.3.4","ProcessedClientActions":[{"ActionType":"SessionType","ActionStatus":1,"ActionResult":null,"Error":""}],"Errors":[]}"#
    );
    assert_eq!(
        HandshakeResponse::parse(br#"{"ClientVersion":"1","Errors":[1]}"#),
        Err(Error::WrongType("Errors"))
    );
}

#[test]
fn small_payloads() {
    let ch = EncChallenge::parse(br#"{"Challenge":"q83vEjRWeJA="}"#).unwrap();
    assert_eq!(ch.challenge, "q83vEjRWeJA=");
    assert_eq!(
        emit_checked(|b| ch.emit(b)),
        br#"{"Challenge":"q83vEjRWeJA="}"#
    );
    assert_eq!(
        EncChallenge::parse(b"{}"),
        Err(Error::MissingField("Challenge"))
    );

    let cc = br#"{"MessageId":"m","CreatedDate":"2026-11-26T02:00:00.000Z","DestinationId":"d","SessionId":"s-1","MessageType":"channel_closed","SchemaVersion":1,"Output":"Session terminated\n"}"#;
    let c = ChannelClosed::parse(cc).unwrap();
    assert_eq!(c.session_id, "s-1");
    assert_eq!(c.schema_version, 1);
    assert_eq!(format!("{}", c.output), "Session terminated\n");
    assert_eq!(emit_checked(|b| c.emit(b)), cc);
    assert_eq!(ChannelClosed::parse(b"{}"), Ok(ChannelClosed::default()));
    assert_eq!(
        ChannelClosed::parse(br#"{"Output":5}"#),
        Err(Error::WrongType("Output"))
    );

    assert_eq!(Flag::parse(&[0, 0, 0, 2]), Ok(Flag::TerminateSession));
    assert_eq!(Flag::parse(&[0, 0, 0, 1]), Ok(Flag::DisconnectToPort));
    assert_eq!(Flag::parse(&[0, 0, 0, 3]), Ok(Flag::ConnectToPortError));
    assert_eq!(Flag::parse(&[1, 0, 0, 0]), Ok(Flag::Unknown(1 << 24)));
    for bad in [&[][..], &[0, 0, 2], &[0, 0, 0, 0, 2]] {
        assert_eq!(Flag::parse(bad), Err(Error::BadFlagLength));
    }
    assert_eq!(
        emit_checked(|b| Flag::TerminateSession.emit(b)),
        [0, 0, 0, 2]
    );

    for (input, want) in [
        (&b"EXIT_CODE: 3"[..], 3),
        (b"EXIT_CODE: 0\n", 0),
        (b"EXIT_CODE: -1\r\n", -1),
        (b"EXIT_CODE:127", 127),
        (b"EXIT_CODE: 2147483647 ", i32::MAX),
        (b"EXIT_CODE: -2147483648", i32::MIN),
    ] {
        assert_eq!(ExitCode::parse(input), Ok(ExitCode(want)));
    }
    for bad in [
        &b""[..],
        b"EXIT_CODE: ",
        b"EXIT_CODE: x",
        b"EXIT_CODE: 3x",
        b"EXIT_CODE: 1.0",
        b"EXIT_CODE: 2147483648",
        b"exit_code: 3",
        b" EXIT_CODE: 3",
        b"EXIT_CODE: \xff",
    ] {
        assert_eq!(ExitCode::parse(bad), Err(Error::BadExitCode), "{bad:?}");
    }
    assert_eq!(emit_checked(|b| ExitCode(-7).emit(b)), b"EXIT_CODE: -7");
}

#[test]
fn open_data_channel_input_redacts_the_token() {
    let input = br#"{"MessageSchemaVersion":"1.0","RequestId":"0ee0292a-b4f1-443b-bd8e-8c2f26672a91","TokenValue":"AAEAAS3cr3tT0k3n","ClientId":"c","ClientVersion":"1.2.779.0"}"#;
    let o = OpenDataChannelInput::parse(input).unwrap();
    assert_eq!(o.token_value, "AAEAAS3cr3tT0k3n");
    assert_eq!(o.client_version, "1.2.779.0");
    let dbg = format!("{o:?} {o:#?}");
    assert!(!dbg.contains("S3cr3t"), "{dbg}");
    assert!(dbg.contains("redacted"));
    assert_eq!(emit_checked(|b| o.emit(b)), input);
    let missing = br#"{"MessageSchemaVersion":"1.0"}"#;
    let e = OpenDataChannelInput::parse(missing).unwrap_err();
    assert_eq!(e, Error::MissingField("TokenValue"));
    // Errors name the field, never its value.
    let e = OpenDataChannelInput::parse(br#"{"TokenValue":["S3cr3t"]}"#).unwrap_err();
    assert!(!format!("{e} {e:?}").contains("S3cr3t"));
}

#[test]
fn port_properties_accept_numbers_and_strings() {
    let p = PortProperties::parse(
        br#"{"portNumber":3306,"localPortNumber":"","host":"db.internal","type":"LocalPortForwarding","localConnectionType":"unix","localUnixSocket":"/tmp/s"}"#,
    )
    .unwrap();
    assert_eq!(p.port_number, Some(3306));
    assert_eq!(p.local_port_number, None);
    assert_eq!(p.host, "db.internal");
    assert_eq!(p.local_unix_socket, "/tmp/s");
    let out = emit_checked(|b| p.emit(b));
    assert_eq!(PortProperties::parse(&out).unwrap(), p);

    let p = PortProperties::parse(br#"{"portNumber":" 22 "}"#).unwrap();
    assert_eq!(p.port_number, Some(22));
    assert!(!p.is_local_port_forwarding());
    for bad in [
        &br#"{"portNumber":"65536"}"#[..],
        br#"{"portNumber":-1}"#,
        br#"{"portNumber":"22a"}"#,
        br#"{"portNumber":"1111111111111111111111111111111"}"#,
    ] {
        assert_eq!(
            PortProperties::parse(bad),
            Err(Error::BadNumber("portNumber")),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
    assert_eq!(
        PortProperties::parse(br#"{"portNumber":true}"#),
        Err(Error::WrongType("portNumber"))
    );
}

#[test]
fn command_properties() {
    let input = br#"{"linux":{"commands":"echo \"hi\"\nexit 3","runAsElevated":false,"separateOutputStream":"true","stdOutSeparatorPrefix":"OUT:","stdErrSeparatorPrefix":"ERR\r\n"},"windows":{"commands":"dir","separateOutputStream":false}}"#;
    let c = CommandProperties::parse(input).unwrap();
    let l = c.for_os(Os::Linux).unwrap();
    let mut buf = [0u8; 64];
    assert_eq!(l.commands.unescape(&mut buf), Ok("echo \"hi\"\nexit 3"));
    assert!(l.separate_output_stream);
    assert_eq!(l.stdout_separator_prefix, "OUT:");
    assert_eq!(l.stderr_separator_prefix, "ERR\r\n");
    assert!(!c.for_os(Os::Windows).unwrap().separate_output_stream);
    assert_eq!(c.for_os(Os::MacOs), None);
    let out = emit_checked(|b| c.emit(b));
    assert_eq!(CommandProperties::parse(&out).unwrap(), c);
    assert_eq!(
        CommandProperties::parse(br#"{"linux":{"stdOutSeparatorPrefix":"a b"}}"#),
        Err(Error::BadValue("stdOutSeparatorPrefix"))
    );
    assert_eq!(
        CommandProperties::parse(br#"{"linux":{"separateOutputStream":"yes"}}"#),
        Err(Error::BadValue("separateOutputStream"))
    );
    assert_eq!(
        CommandProperties::parse(br#"{"linux":"x"}"#),
        Err(Error::WrongType("linux"))
    );
}

#[test]
fn errors_display_lower_case_without_period() {
    for e in [
        Error::Syntax,
        Error::MissingField("X"),
        Error::BufferTooSmall { required: 3 },
        Error::EscapedString,
    ] {
        let s = format!("{e}");
        assert!(s.chars().next().unwrap().is_lowercase(), "{s}");
        assert!(!s.ends_with('.'), "{s}");
    }
    assert_eq!(
        format!("{}", Error::MissingField("X")),
        "payload lacks a required field: `X`"
    );
}

/// Every parser on the same input; none may panic.
fn parse_all(b: &[u8]) {
    let _ = Acknowledge::parse(b);
    let _ = Size::parse(b);
    let _ = HandshakeComplete::parse(b);
    let _ = EncChallenge::parse(b);
    let _ = ChannelClosed::parse(b);
    let _ = OpenDataChannelInput::parse(b);
    let _ = Flag::parse(b);
    let _ = ExitCode::parse(b);
    let _ = PortProperties::parse(b);
    let _ = CommandProperties::parse(b);
    if let Ok(r) = HandshakeRequest::parse(b) {
        let _ = r.actions().count();
        let mut out = vec![0u8; b.len() * 2 + 256];
        // Parsed input always re-emits (it was validated).
        r.emit(&mut out).unwrap();
    }
    if let Ok(r) = HandshakeResponse::parse(b) {
        let mut out = vec![0u8; b.len() * 2 + 256];
        r.emit(&mut out).unwrap();
    }
}

#[test]
fn every_truncation_and_byte_flip_of_the_samples() {
    let samples: [&[u8]; 3] = [
        HANDSHAKE_REQUEST,
        br#"{"ClientVersion":"1","ProcessedClientActions":[{"ActionType":"KMSEncryption","ActionStatus":1,"ActionResult":{"KMSCipherTextKey":"a","KMSCipherTextHash":"b"},"Error":"\u00e9"}],"Errors":["x"]}"#,
        br#"{"linux":{"commands":"ls\n","separateOutputStream":true}}"#,
    ];
    for s in samples {
        for cut in 0..s.len() {
            parse_all(&s[..cut]);
        }
        for i in 0..s.len() {
            for x in [0x01u8, 0x20, 0x80] {
                let mut m = s.to_vec();
                m[i] ^= x;
                parse_all(&m);
            }
        }
    }
}

fn arb_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,40}",
        any::<String>(),
        proptest::collection::vec(
            prop_oneof![
                Just('"'),
                Just('\\'),
                Just('\n'),
                Just('\u{0}'),
                Just('\u{1f}'),
                Just('é'),
                Just('😀')
            ],
            0..10
        )
        .prop_map(|v| v.into_iter().collect())
    ]
}

/// JSON-ish text for the validator cross-check.
fn arb_jsonish() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("1".to_string()),
        Just("-0.5e3".to_string()),
        Just("01".to_string()),
        Just("1.".to_string()),
        Just("true".to_string()),
        Just("nul".to_string()),
        Just("null".to_string()),
        Just("\"a\\n\"".to_string()),
        Just("\"\\ud83d\\ude00\"".to_string()),
        Just("\"\\x\"".to_string()),
        Just("".to_string()),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4)
                .prop_map(|v| format!("[{}]", v.join(","))),
            proptest::collection::vec(inner.clone(), 0..4)
                .prop_map(|v| format!("[{},]", v.join(","))),
            proptest::collection::vec(("[a-c\"]{0,2}", inner), 0..4).prop_map(|v| {
                let m: Vec<String> = v.iter().map(|(k, x)| format!("\"{k}\":{x}")).collect();
                format!("{{{}}}", m.join(","))
            }),
        ]
    })
}

proptest! {
    #[test]
    fn ack_round_trip(t in prop_oneof![Just(MessageType::InputStreamData), Just(MessageType::OutputStreamData)],
                      id: [u8; 16], seq: i64, q: bool) {
        let a = Acknowledge { message_type: t, message_id: Uuid(id), sequence_number: seq, is_sequential: q };
        let mut buf = [0u8; 256];
        let n = a.emit(&mut buf).unwrap();
        prop_assert_eq!(Acknowledge::parse(&buf[..n]), Ok(a));
        let v: serde_json::Value = serde_json::from_slice(&buf[..n]).unwrap();
        prop_assert_eq!(v["AcknowledgedMessageSequenceNumber"].as_i64(), Some(seq));
    }

    #[test]
    fn size_and_exit_code_round_trip(cols: u32, rows: u32, code: i32) {
        let s = Size { cols, rows };
        let mut buf = [0u8; 64];
        let n = s.emit(&mut buf).unwrap();
        prop_assert_eq!(Size::parse(&buf[..n]), Ok(s));
        let n = ExitCode(code).emit(&mut buf).unwrap();
        prop_assert_eq!(ExitCode::parse(&buf[..n]), Ok(ExitCode(code)));
    }

    #[test]
    fn strings_round_trip_and_agree_with_serde_json(msg in arb_text(), ns: i64) {
        let c = HandshakeComplete { time_to_complete_ns: ns, customer_message: JsonStr::new(&msg) };
        let out = emit_checked(|b| c.emit(b));
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        prop_assert_eq!(v["CustomerMessage"].as_str(), Some(msg.as_str()));
        let back = HandshakeComplete::parse(&out).unwrap();
        prop_assert_eq!(back, c);
        let mut buf = vec![0u8; msg.len()];
        prop_assert_eq!(back.customer_message.unescape(&mut buf), Ok(msg.as_str()));
        // serde_json's own escaping (\u escapes differ) reads the same.
        let theirs = serde_json::to_vec(&serde_json::json!({"CustomerMessage": msg, "HandshakeTimeToComplete": ns})).unwrap();
        prop_assert_eq!(HandshakeComplete::parse(&theirs).unwrap(), c);
    }

    #[test]
    fn handshake_round_trip(agent in arb_text(), key in arb_text(), other in arb_text(),
                            st in 0usize..5, port: u16, status: i64, ack: bool, errs in proptest::collection::vec(arb_text(), 0..3)) {
        let st = [SessionType::StandardStream, SessionType::Port, SessionType::InteractiveCommands,
                  SessionType::NonInteractiveCommands, SessionType::Unknown][st];
        let props = format!("{{\"portNumber\":{port}}}");
        let actions = [
            Action::SessionType { session_type: st, properties: Some(&props) },
            Action::KmsEncryption { kms_key_id: JsonStr::new(&key), challenge: ack.then(|| JsonStr::new(&other)) },
            Action::Other { action_type: JsonStr::new(&other), parameters: None },
        ];
        let r = HandshakeRequest { agent_version: JsonStr::new(&agent), requested_client_actions: List::new(&actions) };
        let out = emit_checked(|b| r.emit(b));
        let back = HandshakeRequest::parse(&out).unwrap();
        // An `Other` whose name is a known action type reads back as that type.
        if other != "SessionType" && other != "KMSEncryption" {
            prop_assert_eq!(back, r);
        }
        prop_assert_eq!(back.kms_key_id(), Some(JsonStr::new(&key)));

        let errs: Vec<JsonStr<'_>> = errs.iter().map(|e| JsonStr::new(e)).collect();
        let processed = [ProcessedAction { action_type: ActionType::KmsEncryption, status: ActionStatus::from(status),
            result: ActionResult::Kms { cipher_text_key: JsonStr::new(&key), cipher_text_hash: JsonStr::new(&other), challenge_acknowledgement: ack },
            error: JsonStr::new(&agent) }];
        let resp = HandshakeResponse { client_version: JsonStr::new(&agent), processed_client_actions: List::new(&processed), errors: List::new(&errs) };
        let out = emit_checked(|b| resp.emit(b));
        prop_assert_eq!(HandshakeResponse::parse(&out).unwrap(), resp);
    }

    #[test]
    fn validator_agrees_with_serde_json(doc in arb_jsonish()) {
        let wrapped = format!("{{\"x\":{doc}}}");
        let ours = json::document(wrapped.as_bytes()).is_ok();
        let theirs = serde_json::from_str::<serde_json::Value>(&wrapped).is_ok();
        prop_assert_eq!(ours, theirs, "{}", wrapped);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        parse_all(&bytes);
    }

    #[test]
    fn arbitrary_jsonish_never_panics(doc in arb_jsonish()) {
        parse_all(doc.as_bytes());
        parse_all(format!("{{\"AgentVersion\":\"1\",\"RequestedClientActions\":{doc}}}").as_bytes());
    }
}
