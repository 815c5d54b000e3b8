//! A small, iterative, depth-limited JSON reader and a counting writer.
//!
//! The crate's one JSON reader: the control payloads and the StartSession answer
//! ([`model`](crate::model)) both go through it, under one policy:
//!
//! - every byte is validated (a malformed document is an error, never read "leniently");
//! - no recursion: objects and arrays nest at most [`MAX_DEPTH`] levels, tracked in a bit stack;
//! - keys match ignoring ASCII case (as Go's `encoding/json`, which the agent and the official
//!   client use), and a known key twice is an error (Go keeps the last, other readers the first:
//!   refusing means no two readers see different values in one answer);
//! - `null` reads as absent; unknown keys are skipped (still validated);
//! - strings stay escaped ([`JsonStr`]) until asked for; `\u` surrogate pairs decode to one
//!   character, a lone surrogate is
//!   [`Error::BadEscape`](crate::payload::Error::BadEscape).
//!
//! It replaced serde-json-core, which cannot hand back the raw text of a nested value
//! (`Properties`), recurses once per level when skipping unknown values, passes escaped text
//! through as if it were the value without an unescape buffer, and skips unknown scalars
//! leniently. Measured when the model moved over (thumbv7em, opt-level z): the StartSession
//! parser's flash fell from 6 852 to 4 328 bytes.

mod read;
mod string;
mod write;

pub use string::{Chars, JsonStr};

pub(crate) use read::{check_raw_value, document, parse_i64, Cursor, Elements, Members, Value};
pub(crate) use write::{emit_with, Writer};

/// Nesting limit for any value (objects and arrays). The payloads of PROTOCOL.md §3 nest four
/// levels at most, but a HandshakeRequest carries the session document's `Properties` as the
/// agent got them, three levels down: 64 (what the bit stack holds) leaves Go peers room
/// (their `encoding/json` allows 10 000) and costs no stack, the reader being iterative.
pub const MAX_DEPTH: u32 = 64;
