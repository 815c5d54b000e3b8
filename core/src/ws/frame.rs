//! One WebSocket frame header (RFC 6455 §5.2), parsed from or emitted into a byte slice.
//!
//! ```text
//!  0 1 2 3 4 5 6 7  8 9 ...      2..10          0 or 4
//! |F|R|R|R| opcode |M| len7 | extended length | masking key | payload…
//! ```

use super::{Error, InsufficientSize, Status};

/// Longest header: 2 bytes, 8 bytes of 64-bit length, 4 bytes of mask.
pub const MAX_HEADER_LEN: usize = 14;

/// Longest control frame payload (RFC 6455 §5.5).
pub const MAX_CONTROL_LEN: usize = 125;

/// A frame's opcode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Opcode {
    /// 0x0: continues a fragmented message.
    Continuation,
    /// 0x1: UTF-8 text.
    Text,
    /// 0x2: binary data.
    Binary,
    /// 0x8: close.
    Close,
    /// 0x9: ping.
    Ping,
    /// 0xA: pong.
    Pong,
}

impl Opcode {
    /// Decodes the 4-bit opcode.
    ///
    /// # Errors
    /// [`Error::UnknownOpcode`] for the reserved values 3–7 and 0xB–0xF.
    pub const fn from_u8(v: u8) -> Result<Self, Error> {
        Ok(match v {
            0x0 => Opcode::Continuation,
            0x1 => Opcode::Text,
            0x2 => Opcode::Binary,
            0x8 => Opcode::Close,
            0x9 => Opcode::Ping,
            0xA => Opcode::Pong,
            _ => return Err(Error::UnknownOpcode),
        })
    }

    /// The 4-bit wire value.
    pub const fn to_u8(self) -> u8 {
        match self {
            Opcode::Continuation => 0x0,
            Opcode::Text => 0x1,
            Opcode::Binary => 0x2,
            Opcode::Close => 0x8,
            Opcode::Ping => 0x9,
            Opcode::Pong => 0xA,
        }
    }

    /// Close, ping and pong are control frames.
    pub const fn is_control(self) -> bool {
        matches!(self, Opcode::Close | Opcode::Ping | Opcode::Pong)
    }
}

/// A parsed frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct FrameHeader {
    /// Last frame of its message.
    pub fin: bool,
    /// What the frame carries.
    pub opcode: Opcode,
    /// The masking key, when the frame is masked (every client-to-server frame).
    pub mask: Option<[u8; 4]>,
    /// Payload length.
    pub payload_len: u64,
}

impl FrameHeader {
    /// Parses a header from the start of `bytes`.
    ///
    /// Returns [`Status::Partial`] until the whole header is present, then the header and its
    /// length in bytes. Control frames are checked here (not fragmented, at most 125 bytes), and a
    /// data frame longer than `max_payload` is refused before any of it is read.
    ///
    /// # Errors
    /// [`Error::ReservedBits`], [`Error::UnknownOpcode`], [`Error::BadControlFrame`],
    /// [`Error::MessageTooBig`] (also for a 64-bit length with its top bit set).
    pub fn parse(bytes: &[u8], max_payload: u64) -> Result<Status<(FrameHeader, usize)>, Error> {
        if bytes.len() < 2 {
            return Ok(Status::Partial);
        }
        let (b0, b1) = (bytes[0], bytes[1]);
        if b0 & 0x70 != 0 {
            return Err(Error::ReservedBits);
        }
        let fin = b0 & 0x80 != 0;
        let opcode = Opcode::from_u8(b0 & 0x0f)?;
        let masked = b1 & 0x80 != 0;
        let len7 = b1 & 0x7f;
        let ext = match len7 {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let header_len = 2 + ext + if masked { 4 } else { 0 };
        if opcode.is_control() && (!fin || len7 > MAX_CONTROL_LEN as u8) {
            return Err(Error::BadControlFrame);
        }
        if bytes.len() < header_len {
            return Ok(Status::Partial);
        }
        let payload_len = match ext {
            2 => u64::from(u16::from_be_bytes([bytes[2], bytes[3]])),
            8 => {
                let mut a = [0u8; 8];
                a.copy_from_slice(&bytes[2..10]);
                u64::from_be_bytes(a)
            }
            _ => u64::from(len7),
        };
        // The top bit of a 64-bit length must be 0 (§5.2); such a length exceeds any limit anyway.
        // Control frames are bounded by 125 above, whatever is left of the message budget.
        if (!opcode.is_control() && payload_len > max_payload) || payload_len >> 63 != 0 {
            return Err(Error::MessageTooBig);
        }
        let mask = if masked {
            let m = 2 + ext;
            Some([bytes[m], bytes[m + 1], bytes[m + 2], bytes[m + 3]])
        } else {
            None
        };
        Ok(Status::Complete((
            FrameHeader {
                fin,
                opcode,
                mask,
                payload_len,
            },
            header_len,
        )))
    }

    /// Bytes [`FrameHeader::emit`] writes.
    pub const fn header_len(&self) -> usize {
        let ext = if self.payload_len < 126 {
            0
        } else if self.payload_len <= u16::MAX as u64 {
            2
        } else {
            8
        };
        2 + ext + if self.mask.is_some() { 4 } else { 0 }
    }

    /// Writes the header (shortest length encoding) at the start of `buf`; returns its length.
    ///
    /// # Errors
    /// [`InsufficientSize`] when `buf` is shorter than [`FrameHeader::header_len`]; nothing is
    /// written then.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, InsufficientSize> {
        let n = self.header_len();
        if buf.len() < n {
            return Err(InsufficientSize { required: n });
        }
        buf[0] = (if self.fin { 0x80 } else { 0 }) | self.opcode.to_u8();
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        let mut i = 2;
        if self.payload_len < 126 {
            buf[1] = mask_bit | self.payload_len as u8;
        } else if self.payload_len <= u64::from(u16::MAX) {
            buf[1] = mask_bit | 126;
            buf[2..4].copy_from_slice(&(self.payload_len as u16).to_be_bytes());
            i = 4;
        } else {
            buf[1] = mask_bit | 127;
            buf[2..10].copy_from_slice(&self.payload_len.to_be_bytes());
            i = 10;
        }
        if let Some(m) = self.mask {
            buf[i..i + 4].copy_from_slice(&m);
        }
        Ok(n)
    }
}

/// XORs `data` with the masking key, `offset` bytes into the payload (so a payload can be
/// unmasked in pieces). Masking and unmasking are the same operation.
pub fn apply_mask(data: &mut [u8], mask: [u8; 4], offset: usize) {
    for (i, b) in data.iter_mut().enumerate() {
        *b ^= mask[(offset + i) & 3];
    }
}

/// Writes one whole frame (header + payload, masked when `mask` is `Some`) into `buf`.
///
/// # Errors
/// [`InsufficientSize`] when the frame does not fit; nothing is written then.
pub fn encode_frame(
    buf: &mut [u8],
    fin: bool,
    opcode: Opcode,
    mask: Option<[u8; 4]>,
    payload: &[u8],
) -> Result<usize, InsufficientSize> {
    let h = FrameHeader {
        fin,
        opcode,
        mask,
        payload_len: payload.len() as u64,
    };
    let total = h.header_len() + payload.len();
    if buf.len() < total {
        return Err(InsufficientSize { required: total });
    }
    let n = h.emit(buf)?;
    let body = &mut buf[n..total];
    body.copy_from_slice(payload);
    if let Some(m) = mask {
        apply_mask(body, m, 0);
    }
    Ok(total)
}
