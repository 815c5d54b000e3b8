//! `ssm-session frame`: decode captured data-channel frames to JSON lines, and encode them back.
//!
//! A debugging tool over `ssm_proto::wire`: the codec does all parsing and emitting; this module
//! only moves text in and out.

use core::hash::{BuildHasher, Hasher};
use std::collections::hash_map::RandomState;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Args, Subcommand};
use serde_json::{Map, Value};
use ssm_proto::payload;
use ssm_proto::wire::{Frame, FrameRepr, Header, MessageType, PayloadType, ACK_FLAGS};
use ssm_proto::Uuid;

const INPUT_RULES: &str = "\
Inputs: each INPUT is `-` (standard input), an inline value, or a file; with no INPUT, standard \
input is read. Files and standard input hold one value per line; blank lines and lines starting \
with `#` are skipped.";

const DECODE_ABOUT: &str = "\
Decodes frames given as hex, one per line, into one JSON object per line:
  header_length, message_type, schema_version, created_date, sequence_number, flags,
  message_id (hyphenated UUID, halves put back in order), payload_digest (hex),
  digest_ok (SHA-256 of the payload matches), payload_type, payload_length, payload_hex.

A frame that does not parse prints {\"error\": \"<where>: <why>\"} and decoding goes on; the exit
status is 1 if any frame failed. A wrong digest is reported as digest_ok: false, not as a failure.
Whitespace inside a hex line is ignored, so `xxd -p` and spaced dumps work.

An INPUT made only of hex digits is a frame; anything else is a file name (write ./abc for a file
whose name looks like hex).

With --payload, known payloads are decoded too: JSON control payloads (acknowledge,
channel_closed, publication, Size, Handshake*, EncChallenge*) as a `payload` object, Flag and
ExitCode as a `payload` number, Output and StdErr data as `payload_text` when it is UTF-8. JSON
payloads are also checked with ssm-proto's own parsers. A payload that does not decode, or that
ssm-proto would reject, adds `payload_error` (the frame still counts as decoded).";

const ENCODE_ABOUT: &str = "\
Encodes JSON objects, one per line (the objects `frame decode` prints), into hex frames, one per
line. The header length, payload length and digest are always computed; header_length,
payload_length, payload_digest, digest_ok and payload_error are accepted and ignored, so decode
output encodes back to the same bytes (when its digest was right).

Fields: message_type (required), schema_version (default 1), created_date (Unix ms, default now),
sequence_number (default 0), flags (default 3 for acknowledge, else 0 — as the official client),
message_id (default a random v4 UUID), payload_type (number, default 0), and the payload from the
first present of: payload_hex; payload_text (UTF-8); payload (a number for Flag [4 bytes
big-endian] and ExitCode [`EXIT_CODE: n`], else any JSON value, written compactly); default empty.
Unknown fields are an error, so a misspelt field is not silently defaulted.

An INPUT starting with `{` is a JSON object; anything else is a file name. A line that fails
prints `error: <where>: <why>` on standard error, encoding goes on, and the exit status is 1.";

/// `ssm-session frame`: decode or encode data-channel frames.
#[derive(Debug, Args)]
#[command(
    about = "Decode and encode data-channel frames (hex <-> JSON lines), for captured traffic",
    long_about = "Decode and encode the binary frames of the Session Manager data channel.\n\n\
                  `frame decode` turns hex frames into JSON lines; `frame encode` turns such \
                  JSON lines back into hex. Decode then encode reproduces the input bytes."
)]
pub struct FrameArgs {
    #[command(subcommand)]
    command: FrameCommand,
}

#[derive(Debug, Subcommand)]
enum FrameCommand {
    /// Decode hex frames into JSON lines.
    #[command(long_about = DECODE_ABOUT, after_help = INPUT_RULES)]
    Decode(DecodeArgs),
    /// Encode JSON lines into hex frames.
    #[command(long_about = ENCODE_ABOUT, after_help = INPUT_RULES)]
    Encode(EncodeArgs),
}

#[derive(Debug, Args)]
struct DecodeArgs {
    /// Also decode known payloads (JSON control messages, Flag, ExitCode, text output).
    #[arg(long)]
    payload: bool,
    /// Hex frames, files of hex frames (one per line), or `-` for standard input.
    #[arg(value_name = "HEX|FILE|-")]
    inputs: Vec<String>,
}

#[derive(Debug, Args)]
struct EncodeArgs {
    /// JSON objects, files of JSON objects (one per line), or `-` for standard input.
    #[arg(value_name = "JSON|FILE|-")]
    inputs: Vec<String>,
}

/// Runs `ssm-session frame`; returns 0 when every line succeeded, 1 otherwise.
pub fn run(args: FrameArgs) -> ExitCode {
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let mut failed = false;
    let result = match args.command {
        FrameCommand::Decode(a) => each_line(&a.inputs, is_hex_literal, |item| {
            let line = match item {
                Item::Line { at, text } => match decode_line(text, a.payload) {
                    Ok(v) => v,
                    Err(e) => error_json(&at, &e, &mut failed),
                },
                Item::Unreadable { at, why } => error_json(&at, &why, &mut failed),
            };
            writeln!(out, "{line}")
        }),
        FrameCommand::Encode(a) => each_line(
            &a.inputs,
            |s| s.starts_with('{'),
            |item| {
                match item {
                    Item::Line { at, text } => match encode_line(text) {
                        Ok(hex) => return writeln!(out, "{hex}"),
                        Err(e) => eprintln!("error: {at}: {e}"),
                    },
                    Item::Unreadable { at, why } => eprintln!("error: {at}: {why}"),
                }
                failed = true;
                Ok(())
            },
        ),
    };
    match result {
        Ok(()) if !failed => ExitCode::SUCCESS,
        Ok(()) => ExitCode::FAILURE,
        // A closed pipe (`| head`) ends the run quietly.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: writing standard output: {e}");
            ExitCode::FAILURE
        }
    }
}

fn error_json(at: &str, why: &str, failed: &mut bool) -> Value {
    *failed = true;
    let mut m = Map::new();
    m.insert("error".into(), format!("{at}: {why}").into());
    Value::Object(m)
}

fn is_hex_literal(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// One record to process, or a source that could not be read.
enum Item<'a> {
    Line { at: String, text: &'a str },
    Unreadable { at: String, why: String },
}

/// Feeds every record of the inputs to `f`: inline values as they are, lines of files and of
/// standard input except blank ones and `#` comments. Stops only when `f` fails (output closed).
fn each_line(
    inputs: &[String],
    is_literal: fn(&str) -> bool,
    mut f: impl FnMut(Item<'_>) -> io::Result<()>,
) -> io::Result<()> {
    let stdin = ["-".to_string()];
    let inputs = if inputs.is_empty() {
        &stdin[..]
    } else {
        inputs
    };
    for (i, input) in inputs.iter().enumerate() {
        if input != "-" && is_literal(input) {
            f(Item::Line {
                at: format!("argument {}", i + 1),
                text: input,
            })?;
            continue;
        }
        let (name, reader): (&str, Box<dyn BufRead>) = if input == "-" {
            ("stdin", Box::new(io::stdin().lock()))
        } else {
            match File::open(input) {
                Ok(file) => (input, Box::new(BufReader::new(file))),
                Err(e) => {
                    f(Item::Unreadable {
                        at: format!("argument {}", i + 1),
                        why: format!("cannot open {input:?}: {e}"),
                    })?;
                    continue;
                }
            }
        };
        for (n, line) in reader.split(b'\n').enumerate() {
            let at = format!("{name}:{}", n + 1);
            let bytes = match line {
                Ok(b) => b,
                Err(e) => {
                    f(Item::Unreadable {
                        at,
                        why: format!("read error: {e}"),
                    })?;
                    break;
                }
            };
            let Ok(text) = core::str::from_utf8(&bytes) else {
                f(Item::Unreadable {
                    at,
                    why: "line is not utf-8 text".into(),
                })?;
                continue;
            };
            let text = text.trim();
            if text.is_empty() || text.starts_with('#') {
                continue;
            }
            f(Item::Line { at, text })?;
        }
    }
    Ok(())
}

/// Hex to bytes, ignoring whitespace, with lower-case one-line errors.
fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if let Some(pos) = digits.iter().position(|b| !b.is_ascii_hexdigit()) {
        return Err(format!("not a hex digit at position {}", pos + 1));
    }
    if !digits.len().is_multiple_of(2) {
        return Err(format!("odd number of hex digits ({})", digits.len()));
    }
    hex::decode(&digits).map_err(|e| format!("bad hex: {e}"))
}

fn decode_line(text: &str, with_payload: bool) -> Result<Value, String> {
    let bytes = parse_hex(text)?;
    let frame = Frame::new_checked(&bytes[..]).map_err(|e| e.to_string())?;
    // Unverified so that a wrong digest is shown (digest_ok: false) rather than hidden.
    let repr = FrameRepr::dangerous_parse_unverified(&frame).map_err(|e| e.to_string())?;
    let h = repr.header;
    let mut m = Map::new();
    m.insert("header_length".into(), frame.header_length().into());
    m.insert("message_type".into(), h.message_type.as_str().into());
    m.insert("schema_version".into(), h.schema_version.into());
    m.insert("created_date".into(), h.created_date.into());
    m.insert("sequence_number".into(), h.sequence_number.into());
    m.insert("flags".into(), h.flags.into());
    m.insert("message_id".into(), h.message_id.to_string().into());
    m.insert(
        "payload_digest".into(),
        hex::encode(frame.payload_digest()).into(),
    );
    m.insert("digest_ok".into(), frame.digest_matches().into());
    m.insert("payload_type".into(), u32::from(h.payload_type).into());
    m.insert("payload_length".into(), frame.payload_length().into());
    m.insert("payload_hex".into(), hex::encode(repr.payload).into());
    if with_payload {
        decode_payload(&h, repr.payload, &mut m);
    }
    Ok(Value::Object(m))
}

/// Runs one of ssm-proto's payload parsers, keeping only its verdict.
type PayloadCheck = fn(&[u8]) -> Result<(), payload::Error>;

/// For a JSON control payload (PROTOCOL.md §3), the core parser that reads it.
fn json_payload_check(h: &Header) -> Option<PayloadCheck> {
    let check: PayloadCheck = match (h.message_type, h.payload_type) {
        (MessageType::Acknowledge, _) => |p| payload::Acknowledge::parse(p).map(drop),
        (MessageType::ChannelClosed, _) => |p| payload::ChannelClosed::parse(p).map(drop),
        // Publication messages carry `{}`; any JSON is accepted.
        (MessageType::StartPublication | MessageType::PausePublication, _) => |_| Ok(()),
        (_, PayloadType::Size) => |p| payload::Size::parse(p).map(drop),
        (_, PayloadType::HandshakeRequest) => |p| payload::HandshakeRequest::parse(p).map(drop),
        (_, PayloadType::HandshakeResponse) => |p| payload::HandshakeResponse::parse(p).map(drop),
        (_, PayloadType::HandshakeComplete) => |p| payload::HandshakeComplete::parse(p).map(drop),
        (_, PayloadType::EncChallengeRequest | PayloadType::EncChallengeResponse) => {
            |p| payload::EncChallenge::parse(p).map(drop)
        }
        _ => return None,
    };
    Some(check)
}

/// Adds `payload` / `payload_text` / `payload_error` for the payloads this tool knows. JSON is
/// shown as parsed by serde_json (every key, in order) and also checked with ssm-proto's own
/// parser, whose complaint goes to `payload_error`.
fn decode_payload(h: &Header, p: &[u8], m: &mut Map<String, Value>) {
    let decoded: Result<(&str, Value), String> = if let Some(check) = json_payload_check(h) {
        match serde_json::from_slice::<Value>(p) {
            Ok(v) => {
                if let Err(e) = check(p) {
                    m.insert(
                        "payload_error".into(),
                        format!("ssm-proto rejects it: {e}").into(),
                    );
                }
                Ok(("payload", v))
            }
            Err(e) => Err(format!("payload is not json: {e}")),
        }
    } else {
        match h.payload_type {
            PayloadType::Output | PayloadType::StdErr => match core::str::from_utf8(p) {
                Ok(s) => Ok(("payload_text", s.into())),
                Err(_) => return,
            },
            PayloadType::Flag => payload::Flag::parse(p)
                .map(|f| ("payload", u32::from(f).into()))
                .map_err(|e| e.to_string()),
            PayloadType::ExitCode => payload::ExitCode::parse(p)
                .map(|c| ("payload", c.0.into()))
                .map_err(|e| e.to_string()),
            _ => return,
        }
    };
    match decoded {
        Ok((key, v)) => m.insert(key.into(), v),
        Err(e) => m.insert("payload_error".into(), e.into()),
    };
}

/// Keys `encode` accepts; the computed ones are ignored.
const ENCODE_KEYS: &[&str] = &[
    "message_type",
    "schema_version",
    "created_date",
    "sequence_number",
    "flags",
    "message_id",
    "payload_type",
    "payload_hex",
    "payload_text",
    "payload",
    "header_length",
    "payload_length",
    "payload_digest",
    "digest_ok",
    "payload_error",
];

fn int_field<T: TryFrom<i128>>(
    obj: &Map<String, Value>,
    key: &str,
    kind: &str,
) -> Result<Option<T>, String> {
    let Some(v) = obj.get(key) else {
        return Ok(None);
    };
    let n: Option<i128> = v
        .as_u64()
        .map(i128::from)
        .or_else(|| v.as_i64().map(i128::from));
    n.and_then(|n| T::try_from(n).ok())
        .map(Some)
        .ok_or_else(|| format!("`{key}` must be an integer that fits {kind}"))
}

fn encode_line(text: &str) -> Result<String, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("not json: {e}"))?;
    let obj = v.as_object().ok_or("not a json object")?;
    if let Some(k) = obj.keys().find(|k| !ENCODE_KEYS.contains(&k.as_str())) {
        return Err(format!(
            "unknown field `{k}` (accepted: {})",
            ENCODE_KEYS.join(", ")
        ));
    }
    let message_type = obj
        .get("message_type")
        .ok_or("missing field `message_type`")?
        .as_str()
        .ok_or("`message_type` must be a string")?;
    let message_type = MessageType::from_name(message_type.as_bytes())
        .map_err(|_| "`message_type` must be 1 to 32 printable ascii characters")?;
    let message_id = match obj.get("message_id") {
        None => random_uuid(),
        Some(v) => v
            .as_str()
            .and_then(|s| s.parse::<Uuid>().ok())
            .ok_or("`message_id` must be a hyphenated uuid")?,
    };
    let payload_type =
        PayloadType::from(int_field::<u32>(obj, "payload_type", "u32")?.unwrap_or(0));
    let default_flags = if message_type == MessageType::Acknowledge {
        ACK_FLAGS
    } else {
        0
    };
    let header = Header {
        message_type,
        schema_version: int_field(obj, "schema_version", "u32")?.unwrap_or(1),
        created_date: match int_field(obj, "created_date", "u64")? {
            Some(d) => d,
            None => now_ms(),
        },
        sequence_number: int_field(obj, "sequence_number", "i64")?.unwrap_or(0),
        flags: int_field(obj, "flags", "u64")?.unwrap_or(default_flags),
        message_id,
        payload_type,
    };
    let payload = encode_payload(obj, payload_type)?;
    let repr = FrameRepr {
        header,
        payload: &payload,
    };
    let mut buf = vec![0u8; repr.buffer_len()];
    let n = repr.emit(&mut buf).map_err(|e| e.to_string())?;
    Ok(hex::encode(&buf[..n]))
}

fn encode_payload(obj: &Map<String, Value>, payload_type: PayloadType) -> Result<Vec<u8>, String> {
    if let Some(v) = obj.get("payload_hex") {
        return parse_hex(v.as_str().ok_or("`payload_hex` must be a string")?)
            .map_err(|e| format!("`payload_hex`: {e}"));
    }
    if let Some(v) = obj.get("payload_text") {
        return Ok(v
            .as_str()
            .ok_or("`payload_text` must be a string")?
            .as_bytes()
            .to_vec());
    }
    let Some(v) = obj.get("payload") else {
        return Ok(Vec::new());
    };
    match payload_type {
        PayloadType::Flag => {
            let n = int_field::<u32>(obj, "payload", "u32 (a flag)")?.unwrap_or(0);
            emit_payload(|b| payload::Flag::from(n).emit(b))
        }
        PayloadType::ExitCode => {
            let n = int_field::<i32>(obj, "payload", "i32 (an exit code)")?.unwrap_or(0);
            emit_payload(|b| payload::ExitCode(n).emit(b))
        }
        _ => serde_json::to_vec(v).map_err(|e| format!("`payload`: {e}")),
    }
}

/// Runs a core `emit` into a buffer big enough for the small binary/text payloads.
fn emit_payload(
    emit: impl FnOnce(&mut [u8]) -> Result<usize, payload::Error>,
) -> Result<Vec<u8>, String> {
    let mut buf = [0u8; 32];
    let n = emit(&mut buf).map_err(|e| e.to_string())?;
    Ok(buf[..n].to_vec())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A v4 UUID from the standard library's randomly keyed hasher: unique enough for a debugging
/// tool's message ids, not a cryptographic source.
fn random_uuid() -> Uuid {
    let mut bytes = [0u8; 16];
    for (i, chunk) in bytes.chunks_mut(8).enumerate() {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(now_ms());
        h.write_usize(i);
        chunk.copy_from_slice(&h.finish().to_le_bytes());
    }
    Uuid::from_random_bytes(bytes)
}
