use std::string::String;
use std::vec;
use std::vec::Vec;

use proptest::prelude::*;

use super::*;

/// Frames produced by the official client's serializer (PROTOCOL.md §8).
const VECTORS: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/vectors/frames.json"
));

struct Vector {
    name: String,
    header: Header,
    payload: Vec<u8>,
    frame: Vec<u8>,
}

fn vectors() -> Vec<Vector> {
    let v: serde_json::Value = serde_json::from_str(VECTORS).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|o| Vector {
            name: o["name"].as_str().unwrap().into(),
            header: Header {
                message_type: MessageType::from_name(
                    o["message_type"].as_str().unwrap().as_bytes(),
                )
                .unwrap(),
                schema_version: o["schema_version"].as_u64().unwrap() as u32,
                created_date: o["created_date"].as_u64().unwrap(),
                sequence_number: o["sequence_number"].as_i64().unwrap(),
                flags: o["flags"].as_u64().unwrap(),
                message_id: o["message_id"].as_str().unwrap().parse().unwrap(),
                payload_type: PayloadType::from(o["payload_type"].as_u64().unwrap() as u32),
            },
            payload: hex::decode(o["payload_hex"].as_str().unwrap()).unwrap(),
            frame: hex::decode(o["frame_hex"].as_str().unwrap()).unwrap(),
        })
        .collect()
}

#[test]
fn official_vectors_parse_and_reemit_byte_for_byte() {
    let vs = vectors();
    assert_eq!(vs.len(), 48);
    for v in &vs {
        let repr = FrameRepr::parse_bytes(&v.frame).unwrap_or_else(|e| panic!("{}: {e}", v.name));
        assert_eq!(repr.header, v.header, "{}", v.name);
        assert_eq!(repr.payload, &v.payload[..], "{}", v.name);
        let f = Frame::new_checked(&v.frame[..]).unwrap();
        assert_eq!(f.header_length(), 116);
        assert_eq!(f.payload_length() as usize, v.payload.len());
        assert!(f.digest_matches(), "{}", v.name);

        let mut out = vec![0u8; repr.buffer_len()];
        assert_eq!(repr.emit(&mut out), Ok(v.frame.len()));
        assert_eq!(out, v.frame, "{} re-emit", v.name);

        // In-place emission gives the same bytes.
        let mut inplace = vec![0xAAu8; v.frame.len() + 7];
        inplace[HEADER_LEN..HEADER_LEN + v.payload.len()].copy_from_slice(&v.payload);
        let n = v
            .header
            .emit_in_place(&mut inplace, v.payload.len())
            .unwrap();
        assert_eq!(&inplace[..n], &v.frame[..], "{} in place", v.name);
    }
}

#[test]
fn truncation_at_every_offset_is_an_error() {
    for v in vectors() {
        for cut in 0..v.frame.len() {
            let err = FrameRepr::parse_bytes(&v.frame[..cut]).unwrap_err();
            let want = if cut < HEADER_LEN {
                Error::Truncated
            } else {
                Error::BadPayloadLength
            };
            assert_eq!(err, want, "{} cut at {cut}", v.name);
        }
    }
}

#[test]
fn trailing_bytes_are_a_payload_length_lie() {
    let v = &vectors()[1];
    let mut long = v.frame.clone();
    long.push(0);
    assert_eq!(FrameRepr::parse_bytes(&long), Err(Error::BadPayloadLength));
}

#[test]
fn length_fields_that_lie_are_rejected() {
    let v = &vectors()[4];
    for hl in [0u32, 115, 117, 120, u32::MAX] {
        let mut b = v.frame.clone();
        b[0..4].copy_from_slice(&hl.to_be_bytes());
        assert_eq!(
            FrameRepr::parse_bytes(&b),
            Err(Error::BadHeaderLength),
            "hl {hl}"
        );
    }
    for pl in [
        0u32,
        v.payload.len() as u32 - 1,
        v.payload.len() as u32 + 1,
        u32::MAX,
    ] {
        let mut b = v.frame.clone();
        b[116..120].copy_from_slice(&pl.to_be_bytes());
        assert_eq!(
            FrameRepr::parse_bytes(&b),
            Err(Error::BadPayloadLength),
            "pl {pl}"
        );
    }
}

#[test]
fn corrupted_digest_or_payload_is_rejected() {
    for v in vectors() {
        let exempt = matches!(
            v.header.message_type,
            MessageType::StartPublication | MessageType::PausePublication
        );
        for at in [80usize, 111, v.frame.len() - 1] {
            let mut b = v.frame.clone();
            b[at] ^= 0x01;
            let r = FrameRepr::parse_bytes(&b);
            if exempt {
                assert!(r.is_ok(), "{} exempt", v.name);
            } else {
                assert_eq!(r, Err(Error::DigestMismatch), "{} byte {at}", v.name);
                // The unverified path still reads it.
                let f = Frame::new_checked(&b[..]).unwrap();
                assert!(FrameRepr::dangerous_parse_unverified(&f).is_ok());
            }
        }
    }
}

#[test]
fn empty_payload_is_accepted_with_any_digest() {
    let mut b = vec![0u8; HEADER_LEN];
    let h = Header {
        message_type: MessageType::OutputStreamData,
        schema_version: 1,
        created_date: 1,
        sequence_number: 0,
        flags: 0,
        message_id: Uuid::NIL,
        payload_type: PayloadType::Output,
    };
    h.emit_in_place(&mut b, 0).unwrap();
    b[80..112].fill(0x5a);
    let r = FrameRepr::parse_bytes(&b).unwrap();
    assert!(r.payload.is_empty());
}

#[test]
fn message_type_padding_and_unknowns() {
    let v = &vectors()[1];
    let mut b = v.frame.clone();
    // NUL padding instead of spaces, and a leading space, still parse.
    for c in &mut b[4 + 17..36] {
        *c = 0;
    }
    assert_eq!(
        Frame::new_checked(&b[..]).unwrap().message_type(),
        Ok(MessageType::InputStreamData)
    );
    let mut raw = [b' '; 32];
    raw[1..18].copy_from_slice(b"input_stream_data");
    assert_eq!(
        MessageType::from_field(&raw),
        Ok(MessageType::InputStreamData)
    );

    let mut raw = [b' '; 32];
    raw[..13].copy_from_slice(b"future_thing1");
    let t = MessageType::from_field(&raw).unwrap();
    assert_eq!(t.as_str(), "future_thing1");
    assert!(matches!(t, MessageType::Unknown(_)));

    assert_eq!(
        MessageType::from_field(&[b' '; 32]),
        Err(Error::BadMessageType)
    );
    let mut raw = [b' '; 32];
    raw[0] = 0xff;
    assert_eq!(MessageType::from_field(&raw), Err(Error::BadMessageType));
    let mut raw = [b' '; 32];
    raw[0] = b'\n';
    assert_eq!(MessageType::from_field(&raw), Err(Error::BadMessageType));
}

#[test]
fn unknown_payload_types_are_preserved() {
    for v in [0u32, 12, 13, 0xdead_beef] {
        assert_eq!(u32::from(PayloadType::from(v)), v);
    }
}

#[test]
fn emit_into_short_buffer_writes_nothing() {
    let v = &vectors()[4];
    let repr = FrameRepr::parse_bytes(&v.frame).unwrap();
    let mut small = vec![0x11u8; repr.buffer_len() - 1];
    assert_eq!(
        repr.emit(&mut small),
        Err(InsufficientSize {
            required: repr.buffer_len()
        })
    );
    assert!(small.iter().all(|&c| c == 0x11));
}

fn arb_message_type() -> impl Strategy<Value = MessageType> {
    prop_oneof![
        Just(MessageType::InputStreamData),
        Just(MessageType::OutputStreamData),
        Just(MessageType::Acknowledge),
        Just(MessageType::ChannelClosed),
        Just(MessageType::StartPublication),
        Just(MessageType::PausePublication),
        "[a-z_]{1,32}".prop_map(|s| MessageType::from_name(s.as_bytes()).unwrap()),
    ]
}

proptest! {
    #[test]
    fn repr_emit_parse_round_trip(
        message_type in arb_message_type(),
        schema_version: u32,
        created_date: u64,
        sequence_number: i64,
        flags: u64,
        id: [u8; 16],
        payload_type: u32,
        payload in proptest::collection::vec(any::<u8>(), 0..2048),
    ) {
        let repr = FrameRepr {
            header: Header {
                message_type,
                schema_version,
                created_date,
                sequence_number,
                flags,
                message_id: Uuid(id),
                payload_type: PayloadType::from(payload_type),
            },
            payload: &payload,
        };
        let mut buf = vec![0u8; repr.buffer_len()];
        let n = repr.emit(&mut buf).unwrap();
        prop_assert_eq!(n, buf.len());
        let back = FrameRepr::parse_bytes(&buf).unwrap();
        prop_assert_eq!(back, repr);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(f) = Frame::new_checked(&bytes[..]) {
            let _ = (f.message_type(), f.message_id(), f.payload(), f.digest_acceptable());
        }
        let _ = FrameRepr::parse_bytes(&bytes);
    }
}
