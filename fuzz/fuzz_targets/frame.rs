//! Frame codec: parse, then emit, must give back the input (but for the normalised MessageType
//! padding and, when it did not match, the digest), and re-parse to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ssm_proto::wire::{Frame, FrameRepr};

/// MessageType (trimmed and re-padded on emit) and PayloadDigest (recomputed on emit).
const MESSAGE_TYPE: core::ops::Range<usize> = 4..36;
const DIGEST: core::ops::Range<usize> = 80..112;

fuzz_target!(|data: &[u8]| {
    let Ok(frame) = Frame::new_checked(data) else {
        return;
    };
    // Every accessor is safe after `new_checked`.
    let _ = (frame.message_type(), frame.message_id(), frame.payload_type());
    let digest_ok = frame.digest_matches();
    // Under cfg(fuzzing) `parse` skips the digest check, so this reaches every frame.
    let Ok(repr) = FrameRepr::parse(&frame) else {
        return;
    };
    let mut out = vec![0u8; repr.buffer_len()];
    assert_eq!(repr.emit(&mut out), Ok(data.len()));
    for i in 0..data.len() {
        if MESSAGE_TYPE.contains(&i) || (!digest_ok && DIGEST.contains(&i)) {
            continue;
        }
        assert_eq!(out[i], data[i], "byte {i} differs after parse and emit");
    }
    let again = FrameRepr::parse_bytes(&out).expect("emitted frame parses");
    assert_eq!(again, repr);
    // A short buffer is an error, never a panic, and leaves the buffer alone.
    let mut short = vec![0xa5u8; data.len() - 1];
    assert!(repr.emit(&mut short).is_err());
    assert!(short.iter().all(|&b| b == 0xa5));
});
