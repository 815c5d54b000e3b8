//! The 48 official frames, as a static table generated on the host by `build.rs`.

/// One frame from the official client's serializer, with its expected fields.
pub struct Vector {
    /// Vector name (`v000`…).
    pub name: &'static str,
    /// MessageType text.
    pub message_type: &'static str,
    /// SchemaVersion.
    pub schema_version: u64,
    /// CreatedDate.
    pub created_date: u64,
    /// SequenceNumber.
    pub sequence_number: i64,
    /// Flags.
    pub flags: u64,
    /// MessageId, hyphenated.
    pub message_id: &'static str,
    /// PayloadType.
    pub payload_type: u64,
    /// Payload bytes.
    pub payload: &'static [u8],
    /// The whole frame.
    pub frame: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/vectors.rs"));
