//! The smux v1 frame: an 8-byte header, then `length` bytes of data (PSH only).
//!
//! ```text
//!  0         1       2               4                         8
//!  | version | cmd   | length (u16 LE) | stream id (u32 LE)   | data…
//! ```
//!
//! Field order and little-endian byte order as in xtaci/smux `frame.go` (`rawHeader`): the length
//! comes *before* the stream id.

use core::ops::Range;

use super::{Error, InsufficientSize};
use crate::ws::Status;

/// Header length.
pub const HEADER_LEN: usize = 8;

/// The protocol version this module speaks (smux v1: no per-stream window updates).
pub const VERSION: u8 = 1;

mod field {
    use core::ops::Range;
    pub const VERSION: usize = 0;
    pub const CMD: usize = 1;
    pub const LENGTH: Range<usize> = 2..4;
    pub const STREAM_ID: Range<usize> = 4..8;
}

/// A frame's command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Cmd {
    /// 0: opens a stream.
    Syn,
    /// 1: the sender will send no more data on the stream (EOF).
    Fin,
    /// 2: data.
    Psh,
    /// 3: keep-alive, stream id 0.
    Nop,
}

impl Cmd {
    /// Decodes a command byte.
    ///
    /// # Errors
    /// [`Error::BadCommand`] for anything but 0–3 (4, `UPD`, exists only in smux v2).
    pub const fn from_u8(v: u8) -> Result<Self, Error> {
        Ok(match v {
            0 => Cmd::Syn,
            1 => Cmd::Fin,
            2 => Cmd::Psh,
            3 => Cmd::Nop,
            _ => return Err(Error::BadCommand),
        })
    }

    /// The wire byte.
    pub const fn to_u8(self) -> u8 {
        match self {
            Cmd::Syn => 0,
            Cmd::Fin => 1,
            Cmd::Psh => 2,
            Cmd::Nop => 3,
        }
    }
}

/// A typed view of a frame in a buffer (smoltcp style).
#[derive(Debug, Clone, Copy)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
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

    /// Checks the buffer holds the header and the `length` bytes it announces (more may follow:
    /// [`Frame::total_len`] says where this frame ends). After this no accessor panics.
    ///
    /// # Errors
    /// [`Error::Truncated`].
    pub fn check_len(&self) -> Result<(), Error> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN || b.len() < self.total_len() {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    fn le_u16(&self, r: Range<usize>) -> u16 {
        let b = &self.buffer.as_ref()[r];
        u16::from_le_bytes([b[0], b[1]])
    }

    /// The version byte.
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VERSION]
    }

    /// The raw command byte.
    pub fn cmd_raw(&self) -> u8 {
        self.buffer.as_ref()[field::CMD]
    }

    /// The data length.
    pub fn length(&self) -> u16 {
        self.le_u16(field::LENGTH)
    }

    /// The stream id.
    pub fn stream_id(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::STREAM_ID];
        u32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }

    /// Header plus data length.
    pub fn total_len(&self) -> usize {
        HEADER_LEN + usize::from(self.length())
    }

    /// The data.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.total_len()]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    /// Sets the version byte.
    pub fn set_version(&mut self, v: u8) {
        self.buffer.as_mut()[field::VERSION] = v;
    }

    /// Sets the command.
    pub fn set_cmd(&mut self, c: Cmd) {
        self.buffer.as_mut()[field::CMD] = c.to_u8();
    }

    /// Sets the data length.
    pub fn set_length(&mut self, n: u16) {
        self.buffer.as_mut()[field::LENGTH].copy_from_slice(&n.to_le_bytes());
    }

    /// Sets the stream id.
    pub fn set_stream_id(&mut self, id: u32) {
        self.buffer.as_mut()[field::STREAM_ID].copy_from_slice(&id.to_le_bytes());
    }
}

/// A parsed header: what the 8 bytes say, validated against smux v1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Header {
    /// The command.
    pub cmd: Cmd,
    /// Data bytes that follow (non-zero only for PSH).
    pub length: u16,
    /// The stream id (0 for NOP).
    pub stream_id: u32,
}

impl Header {
    /// Parses and validates a header from the first 8 bytes of `bytes` ([`Status::Partial`] with
    /// fewer). `max_length` bounds PSH data (smux itself never sends more than its
    /// `MaxFrameSize`, 32768 by default).
    ///
    /// # Errors
    /// [`Error::BadVersion`], [`Error::BadCommand`], [`Error::BadLength`] (a control frame with
    /// data: smux would read those bytes as the next header), [`Error::FrameTooLarge`].
    pub fn parse(bytes: &[u8], max_length: u16) -> Result<Status<Header>, Error> {
        if bytes.len() < HEADER_LEN {
            // Fail fast on a wrong version or command, before the rest arrives.
            if bytes.first().is_some_and(|&v| v != VERSION) {
                return Err(Error::BadVersion);
            }
            if let Some(&c) = bytes.get(1) {
                Cmd::from_u8(c)?;
            }
            return Ok(Status::Partial);
        }
        let f = Frame::new_unchecked(bytes);
        if f.version() != VERSION {
            return Err(Error::BadVersion);
        }
        let cmd = Cmd::from_u8(f.cmd_raw())?;
        let length = f.length();
        if cmd != Cmd::Psh && length != 0 {
            return Err(Error::BadLength);
        }
        if length > max_length {
            return Err(Error::FrameTooLarge);
        }
        Ok(Status::Complete(Header {
            cmd,
            length,
            stream_id: f.stream_id(),
        }))
    }

    /// Writes the 8 header bytes.
    ///
    /// # Errors
    /// [`InsufficientSize`] when `buf` is shorter than 8 bytes.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, InsufficientSize> {
        let Some(b) = buf.get_mut(..HEADER_LEN) else {
            return Err(InsufficientSize {
                required: HEADER_LEN,
            });
        };
        let mut f = Frame::new_unchecked(b);
        f.set_version(VERSION);
        f.set_cmd(self.cmd);
        f.set_length(self.length);
        f.set_stream_id(self.stream_id);
        Ok(HEADER_LEN)
    }
}

/// A whole frame, borrowing its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct FrameRepr<'a> {
    /// The command.
    pub cmd: Cmd,
    /// The stream id.
    pub stream_id: u32,
    /// Data (empty except for PSH).
    pub payload: &'a [u8],
}

impl<'a> FrameRepr<'a> {
    /// Parses the frame at the start of `bytes`; returns it and its length, or
    /// [`Status::Partial`] when the header or data is not all there yet.
    ///
    /// # Errors
    /// As [`Header::parse`] with no length limit beyond the u16 field.
    pub fn parse(bytes: &'a [u8]) -> Result<Status<(FrameRepr<'a>, usize)>, Error> {
        let h = match Header::parse(bytes, u16::MAX)? {
            Status::Partial => return Ok(Status::Partial),
            Status::Complete(h) => h,
        };
        let end = HEADER_LEN + usize::from(h.length);
        match bytes.get(HEADER_LEN..end) {
            None => Ok(Status::Partial),
            Some(payload) => Ok(Status::Complete((
                FrameRepr {
                    cmd: h.cmd,
                    stream_id: h.stream_id,
                    payload,
                },
                end,
            ))),
        }
    }

    /// Bytes [`FrameRepr::emit`] writes.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload.len()
    }

    /// Writes the frame into `buf`; returns its length.
    ///
    /// # Errors
    /// [`InsufficientSize`] when it does not fit; nothing is written then.
    ///
    /// # Panics
    /// When the payload is longer than 65535 bytes (the length field is 16 bits: split the data).
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, InsufficientSize> {
        let n = self.buffer_len();
        let length = u16::try_from(self.payload.len()).expect("smux frame data longer than 65535");
        if buf.len() < n {
            return Err(InsufficientSize { required: n });
        }
        Header {
            cmd: self.cmd,
            length,
            stream_id: self.stream_id,
        }
        .emit(buf)?;
        buf[HEADER_LEN..n].copy_from_slice(self.payload);
        Ok(n)
    }
}
