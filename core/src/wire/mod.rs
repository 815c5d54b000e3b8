//! The binary frame of the data channel (PROTOCOL.md §2), as a typed view and a plain `Repr`.
//!
//! [`Frame`] is a zero-copy view over any `AsRef<[u8]>`: after [`Frame::new_checked`] succeeds, no
//! accessor can panic. [`FrameRepr`] is the parsed, validated content, borrowing its payload;
//! [`FrameRepr::emit`] writes a frame into a caller buffer, and [`Header::emit_in_place`] writes the
//! header around a payload the caller has already put in place.
//!
//! ```text
//!  0        4                                 36       40         48          56      64
//!  | HL=116 | MessageType (32, space padded) | Schema | Created  | Sequence  | Flags |
//!  64                 80                 112           116            120
//!  | MessageId (16, halves swapped) | SHA-256 digest | PayloadType | PayloadLength | payload…
//! ```

mod types;

pub use types::{MessageType, PayloadType, UnknownMessageType};

use core::fmt;
use core::ops::Range;

use sha2::{Digest, Sha256};

use crate::uuid::Uuid;

/// Field offsets of the header (`src/message/clientmessage.go`).
mod field {
    use core::ops::Range;
    pub const HEADER_LENGTH: Range<usize> = 0..4;
    pub const MESSAGE_TYPE: Range<usize> = 4..36;
    pub const SCHEMA_VERSION: Range<usize> = 36..40;
    pub const CREATED_DATE: Range<usize> = 40..48;
    pub const SEQUENCE_NUMBER: Range<usize> = 48..56;
    pub const FLAGS: Range<usize> = 56..64;
    pub const MESSAGE_ID: Range<usize> = 64..80;
    pub const PAYLOAD_DIGEST: Range<usize> = 80..112;
    pub const PAYLOAD_TYPE: Range<usize> = 112..116;
    pub const PAYLOAD_LENGTH: Range<usize> = 116..120;
    pub const PAYLOAD_START: usize = 120;
}

/// Bytes before the payload.
pub const HEADER_LEN: usize = field::PAYLOAD_START;

/// The value of the HeaderLength field: the offset of PayloadLength, not the header's size.
pub const HEADER_LENGTH_VALUE: u32 = field::PAYLOAD_LENGTH.start as u32;

/// Length of the MessageType field.
pub const MESSAGE_TYPE_LEN: usize = 32;

/// Flags the official client sets on acknowledge frames (its data frames carry 0).
pub const ACK_FLAGS: u64 = 3;

/// A frame is malformed. Every variant is the peer's fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Error {
    /// Shorter than the 120-byte header.
    Truncated,
    /// HeaderLength is not 116.
    BadHeaderLength,
    /// PayloadLength disagrees with the bytes that follow the header.
    BadPayloadLength,
    /// MessageType is empty or not printable ASCII.
    BadMessageType,
    /// The payload's SHA-256 does not match PayloadDigest.
    DigestMismatch,
}

impl Error {
    /// A static description, lower case.
    pub const fn as_str(&self) -> &'static str {
        match self {
            Error::Truncated => "frame shorter than its 120-byte header",
            Error::BadHeaderLength => "frame header length is not 116",
            Error::BadPayloadLength => "frame payload length disagrees with the bytes present",
            Error::BadMessageType => "frame message type is empty or not printable ascii",
            Error::DigestMismatch => "frame payload digest does not match its payload",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl core::error::Error for Error {}

/// The caller's buffer is too small; nothing was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct InsufficientSize {
    /// Bytes the operation needs.
    pub required: usize,
}

impl fmt::Display for InsufficientSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "buffer too small: {} bytes required", self.required)
    }
}

impl core::error::Error for InsufficientSize {}

/// A read-only or read-write view of a frame in a buffer.
#[derive(Debug, Clone, Copy)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

fn be_u32(b: &[u8], r: Range<usize>) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[r]);
    u32::from_be_bytes(a)
}

fn be_u64(b: &[u8], r: Range<usize>) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[r]);
    u64::from_be_bytes(a)
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Wraps a buffer without checking it; accessors may panic on a short buffer.
    pub const fn new_unchecked(buffer: T) -> Self {
        Frame { buffer }
    }

    /// Wraps a buffer after [`Frame::check_len`].
    ///
    /// # Errors
    /// As [`Frame::check_len`].
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let f = Frame { buffer };
        f.check_len()?;
        Ok(f)
    }

    /// Checks that the buffer holds exactly one frame: a full header, HeaderLength 116, and
    /// PayloadLength equal to the bytes after the header. After this, no accessor panics.
    ///
    /// The official parser ignores PayloadLength and panics on a short frame; this one says which
    /// field lies instead.
    ///
    /// # Errors
    /// [`Error::Truncated`], [`Error::BadHeaderLength`] or [`Error::BadPayloadLength`].
    pub fn check_len(&self) -> Result<(), Error> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if be_u32(b, field::HEADER_LENGTH) != HEADER_LENGTH_VALUE {
            return Err(Error::BadHeaderLength);
        }
        let declared = be_u32(b, field::PAYLOAD_LENGTH) as u64;
        if declared != (b.len() - HEADER_LEN) as u64 {
            return Err(Error::BadPayloadLength);
        }
        Ok(())
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The HeaderLength field (116 in every valid frame).
    pub fn header_length(&self) -> u32 {
        be_u32(self.buffer.as_ref(), field::HEADER_LENGTH)
    }

    /// The raw MessageType field, padding included.
    pub fn message_type_raw(&self) -> &[u8] {
        &self.buffer.as_ref()[field::MESSAGE_TYPE]
    }

    /// The MessageType, trimmed of spaces and NULs at both ends.
    ///
    /// # Errors
    /// [`Error::BadMessageType`] when empty after trimming or not printable ASCII.
    pub fn message_type(&self) -> Result<MessageType, Error> {
        MessageType::from_field(self.message_type_raw())
    }

    /// The SchemaVersion field.
    pub fn schema_version(&self) -> u32 {
        be_u32(self.buffer.as_ref(), field::SCHEMA_VERSION)
    }

    /// The CreatedDate field, Unix epoch milliseconds.
    pub fn created_date(&self) -> u64 {
        be_u64(self.buffer.as_ref(), field::CREATED_DATE)
    }

    /// The SequenceNumber field.
    pub fn sequence_number(&self) -> i64 {
        be_u64(self.buffer.as_ref(), field::SEQUENCE_NUMBER) as i64
    }

    /// The Flags field.
    pub fn flags(&self) -> u64 {
        be_u64(self.buffer.as_ref(), field::FLAGS)
    }

    /// The MessageId, with the wire's swapped halves put back in order.
    pub fn message_id(&self) -> Uuid {
        let mut w = [0u8; 16];
        w.copy_from_slice(&self.buffer.as_ref()[field::MESSAGE_ID]);
        Uuid::from_wire(&w)
    }

    /// The PayloadDigest field.
    pub fn payload_digest(&self) -> [u8; 32] {
        let mut d = [0u8; 32];
        d.copy_from_slice(&self.buffer.as_ref()[field::PAYLOAD_DIGEST]);
        d
    }

    /// The PayloadType field.
    pub fn payload_type(&self) -> PayloadType {
        PayloadType::from(be_u32(self.buffer.as_ref(), field::PAYLOAD_TYPE))
    }

    /// The PayloadLength field.
    pub fn payload_length(&self) -> u32 {
        be_u32(self.buffer.as_ref(), field::PAYLOAD_LENGTH)
    }

    /// The payload: every byte after the header.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }

    /// Whether the PayloadDigest is the SHA-256 of the payload.
    pub fn digest_matches(&self) -> bool {
        digest(self.payload()) == self.payload_digest()
    }

    /// Whether the official client would accept this frame's digest: it matches, or the frame is
    /// exempt (an empty payload, or a `start_publication`/`pause_publication` message).
    pub fn digest_acceptable(&self) -> bool {
        if self.payload().is_empty() {
            return true;
        }
        if let Ok(MessageType::StartPublication | MessageType::PausePublication) =
            self.message_type()
        {
            return true;
        }
        self.digest_matches()
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    fn set_u32(&mut self, r: Range<usize>, v: u32) {
        self.buffer.as_mut()[r].copy_from_slice(&v.to_be_bytes());
    }

    fn set_u64(&mut self, r: Range<usize>, v: u64) {
        self.buffer.as_mut()[r].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets HeaderLength.
    pub fn set_header_length(&mut self, v: u32) {
        self.set_u32(field::HEADER_LENGTH, v)
    }

    /// Sets MessageType, right-padded with spaces.
    pub fn set_message_type(&mut self, t: &MessageType) {
        let dst = &mut self.buffer.as_mut()[field::MESSAGE_TYPE];
        let s = t.as_bytes();
        dst.fill(b' ');
        dst[..s.len()].copy_from_slice(s);
    }

    /// Sets SchemaVersion.
    pub fn set_schema_version(&mut self, v: u32) {
        self.set_u32(field::SCHEMA_VERSION, v)
    }

    /// Sets CreatedDate.
    pub fn set_created_date(&mut self, v: u64) {
        self.set_u64(field::CREATED_DATE, v)
    }

    /// Sets SequenceNumber.
    pub fn set_sequence_number(&mut self, v: i64) {
        self.set_u64(field::SEQUENCE_NUMBER, v as u64)
    }

    /// Sets Flags.
    pub fn set_flags(&mut self, v: u64) {
        self.set_u64(field::FLAGS, v)
    }

    /// Sets MessageId (swapping its halves for the wire).
    pub fn set_message_id(&mut self, id: Uuid) {
        self.buffer.as_mut()[field::MESSAGE_ID].copy_from_slice(&id.to_wire());
    }

    /// Sets PayloadDigest.
    pub fn set_payload_digest(&mut self, d: &[u8; 32]) {
        self.buffer.as_mut()[field::PAYLOAD_DIGEST].copy_from_slice(d);
    }

    /// Sets PayloadType.
    pub fn set_payload_type(&mut self, t: PayloadType) {
        self.set_u32(field::PAYLOAD_TYPE, t.into())
    }

    /// Sets PayloadLength.
    pub fn set_payload_length(&mut self, v: u32) {
        self.set_u32(field::PAYLOAD_LENGTH, v)
    }

    /// The payload, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }

    /// Sets PayloadDigest to the SHA-256 of the payload now in the buffer.
    pub fn fill_digest(&mut self) {
        let d = digest(self.payload());
        self.set_payload_digest(&d);
    }
}

/// SHA-256 of a payload, as PayloadDigest carries it.
pub fn digest(payload: &[u8]) -> [u8; 32] {
    Sha256::digest(payload).into()
}

/// Every header field but the lengths and the digest, which are derived from the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Header {
    /// MessageType.
    pub message_type: MessageType,
    /// SchemaVersion (the official client sends 1).
    pub schema_version: u32,
    /// CreatedDate, Unix epoch milliseconds.
    pub created_date: u64,
    /// SequenceNumber.
    pub sequence_number: i64,
    /// Flags.
    pub flags: u64,
    /// MessageId.
    pub message_id: Uuid,
    /// PayloadType.
    pub payload_type: PayloadType,
}

impl Header {
    /// Writes the header into `buf[..120]` for a payload the caller has already placed at
    /// `buf[120..120 + payload_len]`, computing PayloadLength and the digest. Returns the frame's
    /// length. This avoids copying a payload that was produced in place (JSON, stream data).
    ///
    /// # Errors
    /// [`InsufficientSize`] if `buf` is shorter than `120 + payload_len` (nothing is written), or
    /// if `payload_len` does not fit the u32 PayloadLength field.
    pub fn emit_in_place(
        &self,
        buf: &mut [u8],
        payload_len: usize,
    ) -> Result<usize, InsufficientSize> {
        let required = HEADER_LEN.saturating_add(payload_len);
        if buf.len() < required || u32::try_from(payload_len).is_err() {
            return Err(InsufficientSize { required });
        }
        let mut f = Frame::new_unchecked(&mut buf[..required]);
        f.set_header_length(HEADER_LENGTH_VALUE);
        f.set_message_type(&self.message_type);
        f.set_schema_version(self.schema_version);
        f.set_created_date(self.created_date);
        f.set_sequence_number(self.sequence_number);
        f.set_flags(self.flags);
        f.set_message_id(self.message_id);
        f.set_payload_type(self.payload_type);
        f.set_payload_length(payload_len as u32);
        f.fill_digest();
        Ok(required)
    }

    fn from_frame<T: AsRef<[u8]>>(f: &Frame<T>) -> Result<Self, Error> {
        Ok(Header {
            message_type: f.message_type()?,
            schema_version: f.schema_version(),
            created_date: f.created_date(),
            sequence_number: f.sequence_number(),
            flags: f.flags(),
            message_id: f.message_id(),
            payload_type: f.payload_type(),
        })
    }
}

/// True only in cargo-fuzz builds (`--cfg fuzzing`): [`FrameRepr::parse`] then accepts any
/// digest, so fuzzers reach the payload parsers instead of stopping at SHA-256. Normal builds
/// never set this cfg.
#[allow(unexpected_cfgs, reason = "cargo-fuzz passes --cfg fuzzing")]
const SKIP_DIGEST_FOR_FUZZING: bool = cfg!(fuzzing);

/// A parsed frame: its header fields and a borrowed payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct FrameRepr<'a> {
    /// The header fields.
    pub header: Header,
    /// The payload.
    pub payload: &'a [u8],
}

impl<'a> FrameRepr<'a> {
    /// Parses a checked frame and verifies its digest, with the official exemptions (empty
    /// payloads, `start_publication` and `pause_publication`).
    ///
    /// # Errors
    /// [`Error::BadMessageType`] or [`Error::DigestMismatch`].
    pub fn parse<T: AsRef<[u8]> + ?Sized>(frame: &Frame<&'a T>) -> Result<Self, Error> {
        if !SKIP_DIGEST_FOR_FUZZING && !frame.digest_acceptable() {
            return Err(Error::DigestMismatch);
        }
        Self::dangerous_parse_unverified(frame)
    }

    /// Checks and parses a whole buffer: [`Frame::new_checked`] then [`FrameRepr::parse`].
    ///
    /// # Errors
    /// Any [`Error`].
    pub fn parse_bytes(bytes: &'a [u8]) -> Result<Self, Error> {
        Self::parse(&Frame::new_checked(bytes)?)
    }

    /// Parses without looking at the digest. For debugging captures and for fuzzing past the hash;
    /// never for traffic you act on.
    ///
    /// # Errors
    /// [`Error::BadMessageType`].
    pub fn dangerous_parse_unverified<T: AsRef<[u8]> + ?Sized>(
        frame: &Frame<&'a T>,
    ) -> Result<Self, Error> {
        let bytes: &'a [u8] = frame.buffer.as_ref();
        Ok(FrameRepr {
            header: Header::from_frame(frame)?,
            payload: &bytes[HEADER_LEN..],
        })
    }

    /// The emitted length: 120 + payload.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload.len()
    }

    /// Writes the frame into the start of `buf` and returns its length. The digest and both
    /// lengths are computed; MessageType is space padded.
    ///
    /// # Errors
    /// [`InsufficientSize`] if `buf` is shorter than [`FrameRepr::buffer_len`]; nothing is
    /// written.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, InsufficientSize> {
        let len = self.buffer_len();
        if buf.len() < len || u32::try_from(self.payload.len()).is_err() {
            return Err(InsufficientSize { required: len });
        }
        buf[HEADER_LEN..len].copy_from_slice(self.payload);
        self.header.emit_in_place(buf, self.payload.len())
    }
}

#[cfg(test)]
mod tests;
