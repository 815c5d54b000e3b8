//! The message layer: frames in, whole messages out, control frames answered.

use super::frame::{encode_frame, FrameHeader, Opcode, MAX_CONTROL_LEN, MAX_HEADER_LEN};
use super::{close_code, Error, InsufficientSize, Role, Status};

/// What a data message carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum MessageKind {
    /// UTF-8 text (already validated).
    Text,
    /// Bytes.
    Binary,
}

impl MessageKind {
    const fn opcode(self) -> Opcode {
        match self {
            MessageKind::Text => Opcode::Text,
            MessageKind::Binary => Opcode::Binary,
        }
    }
}

/// A whole data message, borrowed from the reassembly buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Message<'a> {
    /// Text or binary.
    pub kind: MessageKind,
    /// The payload, every fragment joined.
    pub data: &'a [u8],
}

impl<'a> Message<'a> {
    /// The text, for a text message.
    pub fn as_text(&self) -> Option<&'a str> {
        match self.kind {
            MessageKind::Text => core::str::from_utf8(self.data).ok(),
            MessageKind::Binary => None,
        }
    }
}

/// The close frame the peer sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct CloseFrame<'a> {
    /// Status code; [`close_code::NO_STATUS`] (1005) when the frame had none.
    pub code: u16,
    /// Reason text (may be empty).
    pub reason: &'a str,
}

/// Where the close handshake stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum State {
    /// Messages flow both ways.
    Open,
    /// One side has sent a close frame (or one is queued for sending).
    Closing,
    /// Both close frames are exchanged: close the TCP connection (the server does it first; a
    /// client waits a moment for that).
    Closed,
    /// The peer broke the protocol; a close frame with the matching code is queued. Send it, then
    /// close the TCP connection.
    Failed,
}

#[derive(Debug, Clone, Copy)]
struct InFrame {
    header: FrameHeader,
    done: u64,
}

/// A WebSocket endpoint's message layer, with an `N`-byte reassembly buffer (the largest message
/// it accepts).
///
/// Driving contract:
/// 1. Feed received bytes with [`WebSocket::handle_input`]; it returns how many it took. It stops
///    after a complete message: take it with [`WebSocket::poll_message`], then feed the rest.
/// 2. After every input, drain [`WebSocket::poll_transmit`]: it writes queued pongs and close
///    frames into your buffer.
/// 3. Send data with [`WebSocket::write_message`].
///
/// Pings are answered automatically (only the latest one, as RFC 6455 §5.5.3 allows). A close
/// frame from the peer is echoed with its code; after that the input is ignored. A protocol
/// violation fails the connection and queues the close code that names it.
#[derive(Debug, Clone)]
pub struct WebSocket<const N: usize> {
    role: Role,
    hdr: [u8; MAX_HEADER_LEN],
    hdr_len: usize,
    frame: Option<InFrame>,
    buf: [u8; N],
    msg_len: usize,
    msg_kind: Option<MessageKind>,
    msg_ready: bool,
    ctrl: [u8; MAX_CONTROL_LEN],
    ctrl_len: usize,
    pong: Option<([u8; MAX_CONTROL_LEN], usize)>,
    ping: Option<([u8; MAX_CONTROL_LEN], usize)>,
    close_out: Option<(u16, [u8; MAX_CONTROL_LEN - 2], usize)>,
    close_sent: bool,
    close_received: Option<u16>,
    failed: bool,
}

impl<const N: usize> WebSocket<N> {
    /// A connection whose opening handshake is done.
    pub const fn new(role: Role) -> Self {
        WebSocket {
            role,
            hdr: [0; MAX_HEADER_LEN],
            hdr_len: 0,
            frame: None,
            buf: [0; N],
            msg_len: 0,
            msg_kind: None,
            msg_ready: false,
            ctrl: [0; MAX_CONTROL_LEN],
            ctrl_len: 0,
            pong: None,
            ping: None,
            close_out: None,
            close_sent: false,
            close_received: None,
            failed: false,
        }
    }

    /// This end's role.
    pub const fn role(&self) -> Role {
        self.role
    }

    /// Where the close handshake stands.
    pub fn state(&self) -> State {
        if self.failed {
            State::Failed
        } else if self.close_sent && self.close_received.is_some() {
            State::Closed
        } else if self.close_sent || self.close_out.is_some() || self.close_received.is_some() {
            State::Closing
        } else {
            State::Open
        }
    }

    /// The close frame the peer sent, once it has.
    pub fn close_frame(&self) -> Option<CloseFrame<'_>> {
        let code = self.close_received?;
        let reason = self.ctrl.get(2..self.ctrl_len).unwrap_or(&[]);
        Some(CloseFrame {
            code,
            // Validated when the frame arrived.
            reason: core::str::from_utf8(reason).unwrap_or(""),
        })
    }

    /// Takes in received bytes; returns how many it consumed.
    ///
    /// It consumes everything unless a message completes: then it stops right after that
    /// message's last frame and consumes nothing more until you take the message with
    /// [`WebSocket::poll_message`]. After the peer's close frame, input is consumed and ignored.
    ///
    /// # Errors
    /// Any frame or message error (see [`Error::close_code`]); the connection is then failed and a
    /// close frame is queued. [`Error::Closed`] once failed.
    pub fn handle_input(&mut self, data: &[u8]) -> Result<usize, Error> {
        if self.failed {
            return Err(Error::Closed);
        }
        let mut i = 0;
        while i < data.len() && !self.msg_ready {
            if self.close_received.is_some() {
                return Ok(data.len());
            }
            match self.frame {
                None => {
                    let take = (MAX_HEADER_LEN - self.hdr_len).min(data.len() - i);
                    self.hdr[self.hdr_len..self.hdr_len + take].copy_from_slice(&data[i..i + take]);
                    let max = if self.msg_kind.is_some() {
                        (N - self.msg_len) as u64
                    } else {
                        N as u64
                    };
                    let parsed = FrameHeader::parse(&self.hdr[..self.hdr_len + take], max);
                    match parsed {
                        Err(e) => return Err(self.fail(e)),
                        Ok(Status::Partial) => {
                            self.hdr_len += take;
                            i += take;
                        }
                        Ok(Status::Complete((h, hl))) => {
                            i += hl - self.hdr_len;
                            self.hdr_len = 0;
                            self.start_frame(h)?;
                        }
                    }
                }
                Some(mut f) => {
                    let left = f.header.payload_len - f.done;
                    let take = (data.len() - i).min(usize::try_from(left).unwrap_or(usize::MAX));
                    let dst = if f.header.opcode.is_control() {
                        &mut self.ctrl[self.ctrl_len..self.ctrl_len + take]
                    } else {
                        &mut self.buf[self.msg_len..self.msg_len + take]
                    };
                    dst.copy_from_slice(&data[i..i + take]);
                    if let Some(m) = f.header.mask {
                        super::frame::apply_mask(dst, m, f.done as usize);
                    }
                    if f.header.opcode.is_control() {
                        self.ctrl_len += take;
                    } else {
                        self.msg_len += take;
                    }
                    f.done += take as u64;
                    i += take;
                    self.frame = Some(f);
                    if f.done == f.header.payload_len {
                        self.end_frame()?;
                    }
                }
            }
        }
        Ok(i)
    }

    fn fail(&mut self, e: Error) -> Error {
        // fmt.rs macros cannot take arguments without a logging feature yet (see report).
        warn!("websocket: protocol error from the peer");
        self.failed = true;
        self.frame = None;
        if let (Some(code), false) = (e.close_code(), self.close_sent) {
            self.close_out = Some((code, [0; MAX_CONTROL_LEN - 2], 0));
        }
        e
    }

    fn start_frame(&mut self, h: FrameHeader) -> Result<(), Error> {
        let masked = h.mask.is_some();
        if masked != (self.role == Role::Server) {
            return Err(self.fail(Error::BadMask));
        }
        match h.opcode {
            Opcode::Text | Opcode::Binary if self.msg_kind.is_some() => {
                return Err(self.fail(Error::BadContinuation))
            }
            Opcode::Text => self.begin_message(MessageKind::Text),
            Opcode::Binary => self.begin_message(MessageKind::Binary),
            Opcode::Continuation if self.msg_kind.is_none() => {
                return Err(self.fail(Error::BadContinuation))
            }
            Opcode::Continuation => {}
            Opcode::Close | Opcode::Ping | Opcode::Pong => self.ctrl_len = 0,
        }
        self.frame = Some(InFrame { header: h, done: 0 });
        if h.payload_len == 0 {
            self.end_frame()?;
        }
        Ok(())
    }

    fn begin_message(&mut self, kind: MessageKind) {
        self.msg_kind = Some(kind);
        self.msg_len = 0;
    }

    fn end_frame(&mut self) -> Result<(), Error> {
        let Some(f) = self.frame.take() else {
            return Ok(());
        };
        match f.header.opcode {
            Opcode::Text | Opcode::Binary | Opcode::Continuation => {
                if f.header.fin {
                    if self.msg_kind == Some(MessageKind::Text)
                        && core::str::from_utf8(&self.buf[..self.msg_len]).is_err()
                    {
                        return Err(self.fail(Error::InvalidUtf8));
                    }
                    self.msg_ready = true;
                }
            }
            Opcode::Ping => {
                if !self.close_sent && self.close_out.is_none() {
                    let mut p = [0; MAX_CONTROL_LEN];
                    p[..self.ctrl_len].copy_from_slice(&self.ctrl[..self.ctrl_len]);
                    self.pong = Some((p, self.ctrl_len));
                }
            }
            Opcode::Pong => trace!("websocket: pong received"),
            Opcode::Close => {
                let code = match self.ctrl_len {
                    0 => close_code::NO_STATUS,
                    1 => return Err(self.fail(Error::BadClose)),
                    _ => u16::from_be_bytes([self.ctrl[0], self.ctrl[1]]),
                };
                if self.ctrl_len >= 2 && !close_code::is_valid(code) {
                    return Err(self.fail(Error::BadClose));
                }
                if self.ctrl_len > 2 && core::str::from_utf8(&self.ctrl[2..self.ctrl_len]).is_err()
                {
                    return Err(self.fail(Error::InvalidUtf8));
                }
                debug!("websocket: close received");
                self.close_received = Some(code);
                self.pong = None;
                if !self.close_sent && self.close_out.is_none() {
                    // Echo the peer's code (RFC 6455 §5.5.1); an empty close gets an empty one.
                    self.close_out = Some((code, [0; MAX_CONTROL_LEN - 2], 0));
                }
            }
        }
        Ok(())
    }

    /// The complete message, once [`WebSocket::handle_input`] has assembled one. Taking it lets
    /// input flow again; the data stays valid while you borrow it.
    pub fn poll_message(&mut self) -> Option<Message<'_>> {
        if !self.msg_ready {
            return None;
        }
        self.msg_ready = false;
        let kind = self.msg_kind.take()?;
        Some(Message {
            kind,
            data: &self.buf[..self.msg_len],
        })
    }

    fn mask_for(&self, mask: &mut impl FnMut() -> [u8; 4]) -> Option<[u8; 4]> {
        match self.role {
            Role::Client => Some(mask()),
            Role::Server => None,
        }
    }

    /// Writes the next queued control frame (pong, ping, then close) into `buf`.
    ///
    /// `mask` supplies a fresh random masking key per frame (called only by a client).
    ///
    /// # Errors
    /// [`InsufficientSize`] when `buf` cannot hold the frame (at most 131 bytes); the frame stays
    /// queued.
    pub fn poll_transmit(
        &mut self,
        buf: &mut [u8],
        mut mask: impl FnMut() -> [u8; 4],
    ) -> Result<Option<usize>, InsufficientSize> {
        if self.close_sent {
            return Ok(None);
        }
        if let Some((p, n)) = self.pong {
            let m = self.mask_for(&mut mask);
            let len = encode_frame(buf, true, Opcode::Pong, m, &p[..n])?;
            self.pong = None;
            return Ok(Some(len));
        }
        if let Some((p, n)) = self.ping {
            let m = self.mask_for(&mut mask);
            let len = encode_frame(buf, true, Opcode::Ping, m, &p[..n])?;
            self.ping = None;
            return Ok(Some(len));
        }
        if let Some((code, reason, n)) = self.close_out {
            let mut payload = [0u8; MAX_CONTROL_LEN];
            let plen = if code == close_code::NO_STATUS {
                0
            } else {
                payload[..2].copy_from_slice(&code.to_be_bytes());
                payload[2..2 + n].copy_from_slice(&reason[..n]);
                2 + n
            };
            let m = self.mask_for(&mut mask);
            let len = encode_frame(buf, true, Opcode::Close, m, &payload[..plen])?;
            self.close_out = None;
            self.close_sent = true;
            debug!("websocket: close sent");
            return Ok(Some(len));
        }
        Ok(None)
    }

    /// Writes one unfragmented data message into `buf` (masked for a client); returns the frame
    /// length.
    ///
    /// # Errors
    /// [`Error::Closed`] once a close frame is sent or queued, or the connection failed;
    /// [`Error::BufferTooSmall`] when the frame does not fit in `buf` (nothing is written).
    pub fn write_message(
        &mut self,
        buf: &mut [u8],
        kind: MessageKind,
        payload: &[u8],
        mut mask: impl FnMut() -> [u8; 4],
    ) -> Result<usize, Error> {
        if self.state() != State::Open {
            return Err(Error::Closed);
        }
        let m = self.mask_for(&mut mask);
        Ok(encode_frame(buf, true, kind.opcode(), m, payload)?)
    }

    /// Queues a ping (payload truncated to 125 bytes); the peer answers with a pong.
    pub fn ping(&mut self, payload: &[u8]) {
        let n = payload.len().min(MAX_CONTROL_LEN);
        let mut p = [0; MAX_CONTROL_LEN];
        p[..n].copy_from_slice(&payload[..n]);
        self.ping = Some((p, n));
    }

    /// Starts the close handshake: queues a close frame with `code` and `reason` (cut to 123
    /// bytes at a character boundary). Does nothing if a close frame is already sent or queued.
    ///
    /// # Errors
    /// [`Error::BadClose`] when `code` may not be sent (RFC 6455 §7.4).
    pub fn close(&mut self, code: u16, reason: &str) -> Result<(), Error> {
        if !close_code::is_valid(code) {
            return Err(Error::BadClose);
        }
        if self.close_sent || self.close_out.is_some() {
            return Ok(());
        }
        let mut n = reason.len().min(MAX_CONTROL_LEN - 2);
        while !reason.is_char_boundary(n) {
            n -= 1;
        }
        let mut r = [0; MAX_CONTROL_LEN - 2];
        r[..n].copy_from_slice(&reason.as_bytes()[..n]);
        self.close_out = Some((code, r, n));
        Ok(())
    }
}
