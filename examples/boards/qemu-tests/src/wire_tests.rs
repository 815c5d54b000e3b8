//! The frame codec against the official vectors: parse, field comparison, byte-for-byte re-emit,
//! digest corruption, truncation and lying length fields.

use ssm_proto::uuid::Uuid;
use ssm_proto::wire::{Error, Frame, FrameRepr, Header, MessageType, PayloadType, HEADER_LEN};

use crate::check;
use crate::harness::{Test, TestResult};
use crate::vectors::{Vector, VECTORS};

/// Larger than the largest vector (1145 bytes).
const BUF: usize = 2048;

/// The tests in this module.
pub static TESTS: &[Test] = &[
    Test {
        name: "there_are_48_vectors",
        run: there_are_48_vectors,
    },
    Test {
        name: "vectors_parse_to_their_fields",
        run: vectors_parse_to_their_fields,
    },
    Test {
        name: "vectors_reemit_byte_for_byte",
        run: vectors_reemit_byte_for_byte,
    },
    Test {
        name: "vectors_emit_in_place",
        run: vectors_emit_in_place,
    },
    Test {
        name: "corrupted_digest_or_payload_is_rejected",
        run: corrupted_digest_or_payload_is_rejected,
    },
    Test {
        name: "truncation_at_every_offset_is_an_error",
        run: truncation_at_every_offset_is_an_error,
    },
    Test {
        name: "trailing_bytes_are_a_payload_length_lie",
        run: trailing_bytes_are_a_payload_length_lie,
    },
    Test {
        name: "length_fields_that_lie_are_rejected",
        run: length_fields_that_lie_are_rejected,
    },
    Test {
        name: "emit_into_short_buffer_writes_nothing",
        run: emit_into_short_buffer_writes_nothing,
    },
    Test {
        name: "message_ids_round_trip",
        run: message_ids_round_trip,
    },
];

fn expected_header(v: &Vector) -> Option<Header> {
    Some(Header {
        message_type: MessageType::from_name(v.message_type.as_bytes()).ok()?,
        schema_version: u32::try_from(v.schema_version).ok()?,
        created_date: v.created_date,
        sequence_number: v.sequence_number,
        flags: v.flags,
        message_id: v.message_id.parse().ok()?,
        payload_type: PayloadType::from(u32::try_from(v.payload_type).ok()?),
    })
}

fn copy(v: &Vector, buf: &mut [u8; BUF]) -> usize {
    buf[..v.frame.len()].copy_from_slice(v.frame);
    v.frame.len()
}

fn there_are_48_vectors() -> TestResult {
    check!(VECTORS.len() == 48);
    Ok(())
}

fn vectors_parse_to_their_fields() -> TestResult {
    for v in VECTORS {
        let want = expected_header(v);
        check!(want.is_some(), v.name);
        let repr = FrameRepr::parse_bytes(v.frame);
        check!(repr.is_ok(), v.name);
        let Ok(repr) = repr else { unreachable!() };
        check!(Some(repr.header) == want, v.name);
        check!(repr.payload == v.payload, v.name);
        let f = Frame::new_checked(v.frame);
        check!(f.is_ok(), v.name);
        let Ok(f) = f else { unreachable!() };
        check!(f.header_length() == 116, v.name);
        check!(f.payload_length() as usize == v.payload.len(), v.name);
        check!(f.digest_matches(), v.name);
        check!(
            f.message_type().map(|t| t.as_str() == v.message_type) == Ok(true),
            v.name
        );
    }
    Ok(())
}

fn vectors_reemit_byte_for_byte() -> TestResult {
    let mut out = [0u8; BUF];
    for v in VECTORS {
        let Ok(repr) = FrameRepr::parse_bytes(v.frame) else {
            check!(false, v.name);
            continue;
        };
        out.fill(0xAA);
        check!(repr.buffer_len() == v.frame.len(), v.name);
        check!(repr.emit(&mut out) == Ok(v.frame.len()), v.name);
        check!(&out[..v.frame.len()] == v.frame, v.name);
    }
    Ok(())
}

fn vectors_emit_in_place() -> TestResult {
    let mut out = [0u8; BUF];
    for v in VECTORS {
        let Some(h) = expected_header(v) else {
            check!(false, v.name);
            continue;
        };
        out.fill(0x55);
        out[HEADER_LEN..HEADER_LEN + v.payload.len()].copy_from_slice(v.payload);
        check!(
            h.emit_in_place(&mut out, v.payload.len()) == Ok(v.frame.len()),
            v.name
        );
        check!(&out[..v.frame.len()] == v.frame, v.name);
    }
    Ok(())
}

fn corrupted_digest_or_payload_is_rejected() -> TestResult {
    let mut buf = [0u8; BUF];
    let mut rejected = 0;
    for v in VECTORS {
        let exempt = matches!(v.message_type, "start_publication" | "pause_publication");
        for at in [80usize, 111, v.frame.len() - 1] {
            let n = copy(v, &mut buf);
            buf[at] ^= 0x01;
            let r = FrameRepr::parse_bytes(&buf[..n]);
            if exempt {
                check!(r.is_ok(), v.name);
            } else {
                check!(r == Err(Error::DigestMismatch), v.name);
                let f = Frame::new_checked(&buf[..n]);
                check!(
                    f.is_ok_and(|f| FrameRepr::dangerous_parse_unverified(&f).is_ok()),
                    v.name
                );
                rejected += 1;
            }
        }
    }
    // The exemption must not swallow every vector.
    check!(rejected > 0);
    Ok(())
}

fn truncation_at_every_offset_is_an_error() -> TestResult {
    for v in VECTORS {
        for cut in 0..v.frame.len() {
            let want = if cut < HEADER_LEN {
                Error::Truncated
            } else {
                Error::BadPayloadLength
            };
            check!(FrameRepr::parse_bytes(&v.frame[..cut]) == Err(want), v.name);
        }
    }
    Ok(())
}

fn trailing_bytes_are_a_payload_length_lie() -> TestResult {
    let mut buf = [0u8; BUF];
    for v in VECTORS {
        let n = copy(v, &mut buf);
        check!(
            FrameRepr::parse_bytes(&buf[..n + 1]) == Err(Error::BadPayloadLength),
            v.name
        );
    }
    Ok(())
}

fn length_fields_that_lie_are_rejected() -> TestResult {
    let mut buf = [0u8; BUF];
    for v in VECTORS {
        for hl in [0u32, 115, 117, 120, u32::MAX] {
            let n = copy(v, &mut buf);
            buf[0..4].copy_from_slice(&hl.to_be_bytes());
            check!(
                FrameRepr::parse_bytes(&buf[..n]) == Err(Error::BadHeaderLength),
                v.name
            );
        }
        let len = v.payload.len() as u32;
        for pl in [len.wrapping_sub(1), len + 1, u32::MAX] {
            let n = copy(v, &mut buf);
            buf[116..120].copy_from_slice(&pl.to_be_bytes());
            check!(
                FrameRepr::parse_bytes(&buf[..n]) == Err(Error::BadPayloadLength),
                v.name
            );
        }
    }
    Ok(())
}

fn emit_into_short_buffer_writes_nothing() -> TestResult {
    let mut small = [0x11u8; BUF];
    for v in VECTORS {
        let Ok(repr) = FrameRepr::parse_bytes(v.frame) else {
            check!(false, v.name);
            continue;
        };
        let need = repr.buffer_len();
        let r = repr.emit(&mut small[..need - 1]);
        check!(r.is_err_and(|e| e.required == need), v.name);
        check!(small.iter().all(|&c| c == 0x11), v.name);
    }
    Ok(())
}

fn message_ids_round_trip() -> TestResult {
    for v in VECTORS {
        let id: Result<Uuid, _> = v.message_id.parse();
        check!(id.is_ok(), v.name);
        let Ok(id) = id else { unreachable!() };
        check!(&id.to_hyphenated()[..] == v.message_id.as_bytes(), v.name);
        check!(Uuid::from_wire(&id.to_wire()) == id, v.name);
        // On the wire the halves are swapped (PROTOCOL.md §2).
        check!(
            v.frame[64..72] == id.0[8..16] && v.frame[72..80] == id.0[0..8],
            v.name
        );
    }
    Ok(())
}
