//! `ssm-session frame` run as a real process.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ssm-session"))
}

fn manifest(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn vectors() -> Vec<Value> {
    // shared/ lies beside the repository root.
    let path = manifest("../../../shared/vectors/frames.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let v: Value = serde_json::from_str(&text).unwrap();
    let list = v.as_array().unwrap().clone();
    assert_eq!(list.len(), 48);
    list
}

/// Every vector's frame hex, one per line.
fn hex_lines(vs: &[Value]) -> String {
    vs.iter()
        .map(|v| format!("{}\n", v["frame_hex"].as_str().unwrap()))
        .collect()
}

fn run(args: &[&str], stdin: &str) -> Output {
    let mut child = bin()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn stdout_lines(o: &Output) -> Vec<String> {
    String::from_utf8(o.stdout.clone())
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn json_lines(o: &Output) -> Vec<Value> {
    stdout_lines(o)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

const KEYS: [&str; 12] = [
    "header_length",
    "message_type",
    "schema_version",
    "created_date",
    "sequence_number",
    "flags",
    "message_id",
    "payload_digest",
    "digest_ok",
    "payload_type",
    "payload_length",
    "payload_hex",
];

#[test]
fn decode_every_vector_from_stdin() {
    let vs = vectors();
    let input = hex_lines(&vs);
    let o = run(&["frame", "decode"], &input);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let lines = stdout_lines(&o);
    let out = json_lines(&o);
    assert_eq!(out.len(), 48);
    for ((v, d), line) in vs.iter().zip(&out).zip(&lines) {
        let name = &v["name"];
        let keys: Vec<&str> = d.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, KEYS, "{name}: keys in the documented order");
        assert!(line.starts_with("{\"header_length\":116,"), "{line}");
        for k in [
            "message_type",
            "schema_version",
            "created_date",
            "sequence_number",
            "flags",
            "message_id",
            "payload_type",
            "payload_hex",
        ] {
            assert_eq!(d[k], v[k], "{name} {k}");
        }
        let frame_hex = v["frame_hex"].as_str().unwrap();
        assert_eq!(
            d["payload_digest"].as_str().unwrap(),
            &frame_hex[160..224],
            "{name}"
        );
        assert_eq!(d["digest_ok"], true, "{name}");
        assert_eq!(d["header_length"], 116);
        assert_eq!(
            d["payload_length"].as_u64().unwrap() as usize,
            v["payload_hex"].as_str().unwrap().len() / 2
        );
    }
}

#[test]
fn decode_then_encode_reproduces_every_vector() {
    let vs = vectors();
    let input = hex_lines(&vs);
    for flags in [
        &["frame", "decode"][..],
        &["frame", "decode", "--payload"][..],
    ] {
        let decoded = run(flags, &input);
        assert!(decoded.status.success());
        let encoded = run(
            &["frame", "encode"],
            core::str::from_utf8(&decoded.stdout).unwrap(),
        );
        assert!(
            encoded.status.success(),
            "{}",
            String::from_utf8_lossy(&encoded.stderr)
        );
        let hex = stdout_lines(&encoded);
        assert_eq!(hex.len(), 48);
        for (v, h) in vs.iter().zip(&hex) {
            assert_eq!(
                h,
                v["frame_hex"].as_str().unwrap(),
                "{} ({flags:?})",
                v["name"]
            );
        }
    }
}

#[test]
fn arguments_files_and_stdin() {
    let vs = vectors();
    let h0 = vs[0]["frame_hex"].as_str().unwrap();
    let h1 = vs[1]["frame_hex"].as_str().unwrap();
    let dir = std::env::temp_dir().join(format!("ssm-frame-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("two.hex");
    // Comments, blank lines, CRLF, surrounding and inner whitespace are all fine.
    let spaced: String = h1
        .as_bytes()
        .chunks(8)
        .map(|c| core::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(" ");
    std::fs::write(
        &file,
        format!("# capture\n\n  {h0}  \r\n\t\n{spaced}\n# end\n"),
    )
    .unwrap();
    let o = run(
        &["frame", "decode", h1, file.to_str().unwrap(), "-", h0],
        &format!("{h1}\n"),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    let ids: Vec<String> = json_lines(&o)
        .iter()
        .map(|d| d["message_id"].as_str().unwrap().to_string())
        .collect();
    let id = |i: usize| vs[i]["message_id"].as_str().unwrap().to_string();
    assert_eq!(ids, [id(1), id(0), id(1), id(1), id(0)]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_frames_print_errors_and_decoding_goes_on() {
    let vs = vectors();
    let good = vs[4]["frame_hex"].as_str().unwrap();
    let mut bad_hl = good.to_string();
    bad_hl.replace_range(6..8, "78"); // HeaderLength 120
    let mut bad_pl = good.to_string();
    let n = 116 * 2;
    bad_pl.replace_range(n..n + 8, "00000001"); // PayloadLength lies
    let mut bad_type = good.to_string();
    bad_type.replace_range(8..72, &"00".repeat(32)); // empty MessageType
    let mut bad_digest = good.to_string();
    bad_digest.replace_range(160..162, if &good[160..162] == "00" { "01" } else { "00" });
    let input = [
        "abc",
        "zz",
        "00",
        &bad_hl,
        &bad_pl,
        &bad_type,
        &good[..good.len() - 2],
        good,
        &bad_digest,
    ]
    .join("\n");
    let o = run(&["frame", "decode"], &input);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let out = json_lines(&o);
    let errors: Vec<String> = out
        .iter()
        .filter_map(|d| d.get("error").map(|e| e.as_str().unwrap().to_string()))
        .collect();
    for (i, expect) in [
        "stdin:1: odd number of hex digits",
        "stdin:2: not a hex digit at position 1",
        "stdin:3: frame shorter than its 120-byte header",
        "stdin:4: frame header length is not 116",
        "stdin:5: frame payload length disagrees",
        "stdin:6: frame message type is empty",
        "stdin:7: frame payload length disagrees",
    ]
    .iter()
    .enumerate()
    {
        assert!(errors[i].starts_with(expect), "{} vs {expect}", errors[i]);
        assert_eq!(out[i].as_object().unwrap().len(), 1, "only an error key");
    }
    assert_eq!(errors.len(), 7);
    assert_eq!(out[7]["digest_ok"], true);
    assert_eq!(out[8]["digest_ok"], false);
    // Garbage never panics: arbitrary bytes, long lines, invalid UTF-8.
    let mut child = bin()
        .args(["frame", "decode", "--payload"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut junk: Vec<u8> = (0..20_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    junk.extend_from_slice(b"\n\xff\xfe\n");
    junk.extend_from_slice("f".repeat(100_001).as_bytes());
    child.stdin.take().unwrap().write_all(&junk).unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(!String::from_utf8_lossy(&o.stderr).contains("panicked"));
    assert!(json_lines(&o).iter().all(|d| d.get("error").is_some()));
}

#[test]
fn payload_decoding() {
    let o = bin()
        .args(["frame", "decode", "--payload"])
        .arg(manifest("samples/handshake.hex"))
        .output()
        .unwrap();
    assert!(o.status.success());
    let out = json_lines(&o);
    assert_eq!(out.len(), 9);
    assert_eq!(
        out[0]["payload"]["RequestedClientActions"][0]["ActionParameters"]["SessionType"],
        "Standard_Stream"
    );
    assert_eq!(
        out[1]["payload"]["AcknowledgedMessageId"],
        out[0]["message_id"]
    );
    assert_eq!(out[1]["flags"], 3, "acknowledge default flags");
    assert_eq!(out[2]["payload"]["ClientVersion"], "1.2.764.0");
    assert_eq!(
        out[4]["payload"],
        serde_json::json!({"cols": 120, "rows": 40})
    );
    assert_eq!(out[5]["payload_text"], "sh-5.2$ echo hello\r\nhello\r\n");
    assert_eq!(out[6]["payload"], 2);
    assert_eq!(out[6]["payload_hex"], "00000002");
    assert_eq!(out[7]["payload"], 0);
    assert_eq!(out[7]["payload_hex"], "455849545f434f44453a2030");
    assert_eq!(
        out[8]["payload"]["Output"],
        "Session user-0123456789abcdef0 terminated"
    );
    // Without --payload, none of it.
    let o = bin()
        .args(["frame", "decode"])
        .arg(manifest("samples/handshake.hex"))
        .output()
        .unwrap();
    for d in json_lines(&o) {
        assert!(d.get("payload").is_none() && d.get("payload_text").is_none());
    }
    // A payload type that promises JSON but carries random bytes: payload_error, not a failure.
    let v = &vectors()[8];
    assert_eq!(v["payload_type"], 5);
    let o = run(
        &[
            "frame",
            "decode",
            "--payload",
            v["frame_hex"].as_str().unwrap(),
        ],
        "",
    );
    assert!(o.status.success());
    let d = &json_lines(&o)[0];
    assert!(d["payload_error"]
        .as_str()
        .unwrap()
        .starts_with("payload is not json"));
}

#[test]
fn samples_are_consistent() {
    // handshake.hex is the encoding of handshake.jsonl.
    let o = bin()
        .args(["frame", "encode"])
        .arg(manifest("samples/handshake.jsonl"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let committed = std::fs::read_to_string(manifest("samples/handshake.hex")).unwrap();
    let committed: Vec<&str> = committed.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(stdout_lines(&o), committed);
    // frames.hex holds only official vectors.
    let vs = vectors();
    let text = std::fs::read_to_string(manifest("samples/frames.hex")).unwrap();
    let frames: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    assert!(frames.len() >= 4);
    for f in frames {
        assert!(
            vs.iter().any(|v| v["frame_hex"] == f),
            "{f} is not a vector"
        );
    }
}

#[test]
fn encode_defaults_and_errors() {
    let input = [
        r#"{"message_type":"acknowledge","payload":{"a":1}}"#,
        r#"{"message_type":"input_stream_data","payload_type":1,"payload_text":"ls\r"}"#,
        r#"{"message_type":"input_stream_data","sequence_nmber":3}"#,
        r#"{"message_type":"input_stream_data","message_id":"nope"}"#,
        r#"{"message_type":""}"#,
        r#"{"message_type":"input_stream_data","payload_hex":"abc"}"#,
        r#"{"message_type":"input_stream_data","flags":-1}"#,
        r#"{"schema_version":1}"#,
        r#"[1,2]"#,
        r#"{"message_type":"#,
        r#"{"message_type":"input_stream_data","payload_type":10,"payload":4294967296}"#,
        r#"{"message_type":"input_stream_data","payload_type":12,"payload":-3}"#,
    ]
    .join("\n");
    let o = run(&["frame", "encode"], &input);
    assert_eq!(o.status.code(), Some(1));
    let hex = stdout_lines(&o);
    assert_eq!(hex.len(), 3, "three good lines");
    let stderr = String::from_utf8(o.stderr).unwrap();
    let errs: Vec<&str> = stderr.lines().collect();
    assert_eq!(errs.len(), 9, "{stderr}");
    for (e, expect) in errs.iter().zip([
        "error: stdin:3: unknown field `sequence_nmber`",
        "error: stdin:4: `message_id` must be a hyphenated uuid",
        "error: stdin:5: `message_type` must be 1 to 32",
        "error: stdin:6: `payload_hex`: odd number of hex digits",
        "error: stdin:7: `flags` must be an integer",
        "error: stdin:8: missing field `message_type`",
        "error: stdin:9: not a json object",
        "error: stdin:10: not json",
        "error: stdin:11: `payload` must be an integer that fits u32",
    ]) {
        assert!(e.starts_with(expect), "{e} vs {expect}");
    }
    let decoded = run(&["frame", "decode", "--payload", "-"], &hex.join("\n"));
    assert!(decoded.status.success());
    let d = json_lines(&decoded);
    assert_eq!(d[0]["flags"], 3);
    assert_eq!(d[0]["schema_version"], 1);
    assert_eq!(d[0]["sequence_number"], 0);
    assert_eq!(d[0]["payload"], serde_json::json!({"a": 1}));
    // Well-formed JSON that ssm-proto's acknowledge parser refuses says why.
    let why = d[0]["payload_error"].as_str().unwrap();
    assert!(
        why.starts_with("ssm-proto rejects it: payload lacks a required field"),
        "{why}"
    );
    assert!(d[1].get("payload_error").is_none());
    let id = d[0]["message_id"].as_str().unwrap();
    assert_eq!(&id[14..15], "4", "random v4 id: {id}");
    assert_ne!(d[0]["message_id"], d[1]["message_id"]);
    let created = d[0]["created_date"].as_u64().unwrap();
    assert!(created > 1_700_000_000_000, "defaults to now: {created}");
    assert_eq!(d[1]["flags"], 0);
    assert_eq!(d[1]["payload_text"], "ls\r");
    assert_eq!(d[2]["payload"], -3);
    assert_eq!(d[2]["payload_hex"], "455849545f434f44453a202d33");
}

#[test]
fn help_explains() {
    let o = bin().args(["frame", "decode", "--help"]).output().unwrap();
    assert!(o.status.success());
    let help = String::from_utf8(o.stdout).unwrap();
    for word in [
        "message_id",
        "digest_ok",
        "--payload",
        "`#`",
        "standard input",
        "exit",
    ] {
        assert!(help.contains(word), "decode help lacks {word}");
    }
    let o = bin().args(["frame", "encode", "--help"]).output().unwrap();
    let help = String::from_utf8(o.stdout).unwrap();
    for word in ["payload_hex", "default", "Unknown fields"] {
        assert!(help.contains(word), "encode help lacks {word}");
    }
    let o = bin().args(["frame", "bogus"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
}
