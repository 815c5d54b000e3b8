//! Shared fixtures for the criterion benches (`benches/`) and the allocation tests (`tests/`):
//! frames of chosen payload sizes and sample control payloads. Not published.

use ssm_proto::uuid::Uuid;
use ssm_proto::wire::{Header, MessageType, PayloadType, HEADER_LEN};

/// Payload sizes the frame benches measure (issue 7): empty, small, one official chunk (1024,
/// the official client's read size), 4 KiB, and 64 KiB.
pub const PAYLOAD_SIZES: [usize; 5] = [0, 64, 1024, 4096, 65536];

/// A data-frame header like the official client's.
pub fn header() -> Header {
    Header {
        message_type: MessageType::OutputStreamData,
        schema_version: 1,
        created_date: 1_764_115_200_000,
        sequence_number: 42,
        flags: 0,
        message_id: Uuid::from_random_bytes([7; 16]),
        payload_type: PayloadType::Output,
    }
}

/// A payload of `len` bytes with varied content.
pub fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + 7) as u8).collect()
}

/// A complete frame around [`payload`]`(len)`.
pub fn frame(len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; HEADER_LEN + len];
    buf[HEADER_LEN..].copy_from_slice(&payload(len));
    let n = header()
        .emit_in_place(&mut buf, len)
        .expect("buffer sized for the frame");
    assert_eq!(n, buf.len());
    buf
}

/// An acknowledge payload as the official client sends it.
pub const ACK: &[u8] = br#"{"AcknowledgedMessageType":"output_stream_data","AcknowledgedMessageId":"3970115e-82aa-4778-a667-f7e936cd4f24","AcknowledgedMessageSequenceNumber":132578107821,"IsSequentialMessage":true}"#;

/// A port-forwarding handshake request with a KMS action.
pub const HANDSHAKE_REQUEST: &[u8] = br#"{"AgentVersion":"3.3.40.0","RequestedClientActions":[{"ActionType":"SessionType","ActionParameters":{"SessionType":"Port","Properties":{"portNumber":"22","type":"LocalPortForwarding","localPortNumber":"0"}}},{"ActionType":"KMSEncryption","ActionParameters":{"KMSKeyId":"arn:aws:kms:us-east-1:123456789012:key/abc"}}]}"#;
