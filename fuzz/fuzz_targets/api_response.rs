//! An SSM API answer as a device reads it (`ssm_proto::api`): the first byte picks the piece
//! size the bytes arrive in and the body buffer's size, the rest is the response. Invariants:
//! no panic; the decoder never consumes more than it was given nor writes past its buffer; a
//! decoded body parses into a session answer or a typed error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ssm_proto::api::{self, http, BodyDecoder, ServiceError};
use ssm_proto::model::Endpoints;

fuzz_target!(|data: &[u8]| {
    let Some((&knob, raw)) = data.split_first() else {
        return;
    };
    let step = usize::from(knob & 0x1f) + 1;
    let cap = usize::from(knob >> 5) * 256;
    let mut filled = 0;
    let head = loop {
        match http::parse_head(&raw[..filled]) {
            Ok(Some(h)) => break h,
            Ok(None) if filled < raw.len() => filled = (filled + step).min(raw.len()),
            _ => return,
        }
    };
    assert!(head.len <= filled);
    let mut body = vec![0u8; cap];
    let Ok(mut dec) = BodyDecoder::new(&head, cap) else {
        return;
    };
    let mut pos = head.len;
    let done = loop {
        let end = (pos + step).min(raw.len());
        match dec.feed(&raw[pos..end], &mut body) {
            Ok(p) => {
                assert!(p.consumed <= end - pos);
                assert!(dec.len() <= cap);
                pos += p.consumed;
                if p.done {
                    break true;
                }
                if pos == raw.len() {
                    break dec.finish().is_ok();
                }
            }
            Err(e) => {
                let _ = format!("{e} {e:?}");
                break false;
            }
        }
    };
    if !done {
        return;
    }
    let body = &body[..dec.len()];
    let mut scratch = vec![0u8; body.len()];
    match api::parse_session_answer(head.status, body, &mut scratch, Endpoints::DangerousAnyHost) {
        Ok(r) => assert!(!r.token().expose_secret().is_empty()),
        Err(e) => {
            let _ = format!("{e} {e:?}");
        }
    }
    let e = ServiceError::parse(head.status, body);
    let _ = e.is_clock_skew(0, head.date);
});
