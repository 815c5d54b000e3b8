//! The multiplexer state machine.

use super::frame::{Cmd, Header, HEADER_LEN};
use super::{Config, Error, InsufficientSize, Role};
use crate::time::Instant;
use crate::ws::Status;

/// A stream's id on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct StreamId(pub u32);

/// Something the application should act on. Small and `Copy`: it never borrows the mux.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Event {
    /// The peer opened a stream (smux `AcceptStream`).
    Opened(StreamId),
    /// Data or the peer's FIN arrived: [`Mux::read`] until [`Error::Blocked`] or end of stream.
    Readable(StreamId),
    /// The stream is done both ways (FIN sent and received, everything read) or was aborted;
    /// its slot is free again.
    Closed(StreamId),
}

/// What [`Mux::write`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Written {
    /// Bytes of your data now in the output.
    pub consumed: usize,
    /// Bytes written to the output buffer (headers included).
    pub len: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotState {
    Free,
    Live,
    /// Released; the `Closed` event is still to be reported. Input for it is discarded.
    Released,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    state: SlotState,
    id: u32,
    syn_pending: bool,
    fin_pending: bool,
    fin_sent: bool,
    fin_received: bool,
    eof_read: bool,
    aborted: bool,
    ev_opened: bool,
    ev_readable: bool,
    head: usize,
    len: usize,
}

impl Slot {
    const EMPTY: Self = Slot {
        state: SlotState::Free,
        id: 0,
        syn_pending: false,
        fin_pending: false,
        fin_sent: false,
        fin_received: false,
        eof_read: false,
        aborted: false,
        ev_opened: false,
        ev_readable: false,
        head: 0,
        len: 0,
    };

    /// Takes the slot for stream `id`.
    fn reset(&mut self, id: u32) {
        *self = Slot {
            state: SlotState::Live,
            id,
            ..Slot::EMPTY
        };
    }

    /// Appends what fits into the ring `buf` (this slot's region); returns how much did.
    fn push(&mut self, buf: &mut [u8], data: &[u8]) -> usize {
        let cap = buf.len();
        let n = data.len().min(cap - self.len);
        let mut done = 0;
        while done < n {
            let tail = (self.head + self.len + done) % cap;
            let run = (n - done).min(cap - tail);
            buf[tail..tail + run].copy_from_slice(&data[done..done + run]);
            done += run;
        }
        self.len += n;
        n
    }

    /// Takes up to `out.len()` bytes out of the ring `buf`.
    fn pop(&mut self, buf: &[u8], out: &mut [u8]) -> usize {
        let cap = buf.len();
        let n = out.len().min(self.len);
        let mut done = 0;
        while done < n {
            let run = (n - done).min(cap - self.head);
            out[done..done + run].copy_from_slice(&buf[self.head..self.head + run]);
            done += run;
            self.head = (self.head + run) % cap;
        }
        self.len -= n;
        n
    }

    /// Done both ways: the slot can go.
    fn finished(&self) -> bool {
        self.fin_sent && (self.aborted || (self.fin_received && self.eof_read))
    }
}

/// Where the incoming byte stream stands.
#[derive(Debug, Clone, Copy)]
enum Rx {
    /// Collecting a header.
    Header,
    /// Inside PSH data: `remaining` bytes go to `slot` (or nowhere when `None`).
    Data { slot: Option<usize>, remaining: u16 },
}

/// An smux v1 session with `S` stream slots. Receive buffers live in storage you provide (`M`,
/// e.g. `[u8; N]`, `&'static mut [u8]`, or a `Vec<u8>` on a host): it is split evenly, each slot
/// getting `len / S` bytes (call that `B`). Caller-owned storage (embassy-net's style) lets a host
/// put megabytes on the heap without a stack temporary, and a device in a `static`.
///
/// Driving contract (quinn-proto style; `now` never goes backwards):
/// - Input: [`Mux::handle_input`] with bytes from the transport (any split), and
///   [`Mux::handle_timeout`] when [`Mux::poll_timeout`] expires.
/// - Output: after every call, drain [`Mux::poll_transmit`] (SYN, FIN, NOP frames) into the
///   transport; data goes out with [`Mux::write`], which frames it into your buffer. Keep the
///   order in which you got the bytes.
/// - Events: [`Mux::poll_event`]; stream data with [`Mux::read`].
///
/// **Back-pressure without windows.** smux v1 has no flow control, so a fast peer could fill any
/// buffer. This mux never buffers more than `B` bytes per stream: when data arrives for a stream
/// whose buffer is full, [`Mux::handle_input`] stops and returns how much it consumed. Keep the
/// rest and stop reading the transport until a [`Mux::read`] makes room, then feed the rest
/// again. This stalls every stream behind the slow one (the transport is one ordered byte
/// stream; that is what v1 allows), but memory stays bounded and nothing is lost. A stream you no
/// longer read must be [`Mux::abort`]ed so that its data is discarded instead.
///
/// **FIN.** [`Mux::close`] sends FIN (no more writes); you keep reading until the peer's FIN,
/// which [`Mux::read`] reports as `Ok(None)`. The slot is released ([`Event::Closed`]) once both
/// FINs are through and you read the end. smux has no RST: [`Mux::abort`] sends FIN and drops the
/// stream at once. A SYN that finds no free slot is answered with a FIN.
///
/// There is no `Writable` event: v1 has no window, so a stream is writable from open to
/// [`Mux::close`]; the transport's own back-pressure (the session's send window) is what limits
/// writing.
#[derive(Debug, Clone)]
pub struct Mux<M, const S: usize = 16> {
    config: Config,
    next_id: u32,
    ids_exhausted: bool,
    slots: [Slot; S],
    storage: M,
    cap: usize,
    hdr: [u8; HEADER_LEN],
    hdr_len: usize,
    rx: Rx,
    refused: [u32; 4],
    refused_len: usize,
    nop_pending: bool,
    nop_due: Option<Instant>,
    last_rx: Instant,
    error: Option<Error>,
    event_cursor: usize,
}

impl<M: AsRef<[u8]> + AsMut<[u8]>, const S: usize> Mux<M, S> {
    /// A new session for `role`, starting at `now`, with `storage` for the receive buffers
    /// (`storage.len() / S` bytes per stream).
    ///
    /// # Panics
    /// When `S` is 0 or `storage` holds less than one byte per slot.
    pub fn new(config: Config, role: Role, now: Instant, storage: M) -> Self {
        let cap = storage.as_ref().len() / S.max(1);
        assert!(
            S > 0 && cap > 0,
            "smux: storage must give every slot at least one byte"
        );
        Mux {
            config,
            // smux bumps the counter by 2 before using it: clients 3, 5, …; servers 2, 4, ….
            next_id: match role {
                Role::Client => 3,
                Role::Server => 2,
            },
            ids_exhausted: false,
            slots: [Slot::EMPTY; S],
            storage,
            cap,
            hdr: [0; HEADER_LEN],
            hdr_len: 0,
            rx: Rx::Header,
            refused: [0; 4],
            refused_len: 0,
            nop_pending: false,
            nop_due: config.keep_alive.map(|k| now + k.interval),
            last_rx: now,
            error: None,
            event_cursor: 0,
        }
    }

    /// The settings in use.
    pub const fn config(&self) -> &Config {
        &self.config
    }

    /// The error that failed the session, if any.
    pub const fn error(&self) -> Option<Error> {
        self.error
    }

    /// Streams holding a slot (live or awaiting their `Closed` event).
    pub fn stream_count(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| s.state != SlotState::Free)
            .count()
    }

    fn fail(&mut self, e: Error) -> Error {
        warn!("smux: session failed");
        self.error = Some(e);
        e
    }

    fn find(&self, id: u32) -> Option<usize> {
        self.slots
            .iter()
            .position(|s| s.state == SlotState::Live && s.id == id)
    }

    /// Receive buffer bytes per stream.
    pub const fn stream_buffer_len(&self) -> usize {
        self.cap
    }

    /// The ring buffer region of slot `i`.
    fn region(storage: &mut M, cap: usize, i: usize) -> &mut [u8] {
        &mut storage.as_mut()[i * cap..(i + 1) * cap]
    }

    fn live(&mut self, id: StreamId) -> Result<&mut Slot, Error> {
        if self.error.is_some() {
            return Err(Error::Failed);
        }
        let i = self.find(id.0).ok_or(Error::UnknownStream)?;
        Ok(&mut self.slots[i])
    }

    /// Opens a stream; its SYN goes out with the next [`Mux::poll_transmit`] or [`Mux::write`].
    ///
    /// # Errors
    /// [`Error::Failed`], [`Error::TooManyStreams`], [`Error::IdsExhausted`].
    pub fn open(&mut self) -> Result<StreamId, Error> {
        if self.error.is_some() {
            return Err(Error::Failed);
        }
        if self.ids_exhausted {
            return Err(Error::IdsExhausted);
        }
        let i = self
            .slots
            .iter()
            .position(|s| s.state == SlotState::Free)
            .ok_or(Error::TooManyStreams)?;
        let id = self.next_id;
        match self.next_id.checked_add(2) {
            Some(n) => self.next_id = n,
            None => self.ids_exhausted = true,
        }
        self.slots[i].reset(id);
        self.slots[i].syn_pending = true;
        Ok(StreamId(id))
    }

    /// Frames as much of `data` as fits into `out` (one PSH of at most
    /// [`Config::max_frame_size`], preceded by the stream's SYN if it is still due).
    ///
    /// # Errors
    /// [`Error::Failed`], [`Error::UnknownStream`], [`Error::StreamClosed`],
    /// [`Error::BufferTooSmall`] (nothing written).
    pub fn write(&mut self, id: StreamId, data: &[u8], out: &mut [u8]) -> Result<Written, Error> {
        let max = usize::from(self.config.max_frame_size.max(1));
        let slot = self.live(id)?;
        if slot.fin_pending || slot.fin_sent {
            return Err(Error::StreamClosed);
        }
        let syn = if slot.syn_pending { HEADER_LEN } else { 0 };
        if data.is_empty() {
            return Ok(Written {
                consumed: 0,
                len: 0,
            });
        }
        if out.len() < syn + HEADER_LEN + 1 {
            return Err(Error::BufferTooSmall);
        }
        if slot.syn_pending {
            emit(out, Cmd::Syn, 0, id.0);
            slot.syn_pending = false;
        }
        let n = data.len().min(out.len() - syn - HEADER_LEN).min(max);
        // n ≤ max_frame_size ≤ u16::MAX.
        emit(&mut out[syn..], Cmd::Psh, n as u16, id.0);
        out[syn + HEADER_LEN..syn + HEADER_LEN + n].copy_from_slice(&data[..n]);
        Ok(Written {
            consumed: n,
            len: syn + HEADER_LEN + n,
        })
    }

    /// Reads buffered data of a stream: `Ok(Some(n))` with `n` bytes, `Ok(None)` at the end of
    /// the stream (the peer's FIN, after all its data).
    ///
    /// # Errors
    /// [`Error::Blocked`] (nothing yet), [`Error::UnknownStream`], [`Error::Failed`] (check
    /// [`Mux::error`]).
    pub fn read(&mut self, id: StreamId, out: &mut [u8]) -> Result<Option<usize>, Error> {
        if self.error.is_some() {
            return Err(Error::Failed);
        }
        let i = self.find(id.0).ok_or(Error::UnknownStream)?;
        let slot = &mut self.slots[i];
        if slot.len > 0 {
            let region = Self::region(&mut self.storage, self.cap, i);
            return Ok(Some(slot.pop(region, out)));
        }
        if slot.fin_received {
            slot.eof_read = true;
            self.release_if_finished();
            return Ok(None);
        }
        Err(Error::Blocked)
    }

    /// Bytes waiting in a stream's receive buffer.
    pub fn readable_len(&self, id: StreamId) -> usize {
        self.find(id.0).map_or(0, |i| self.slots[i].len)
    }

    /// Sends FIN: you write no more on this stream. Reading goes on until the peer's FIN.
    /// Closing twice does nothing.
    ///
    /// # Errors
    /// [`Error::Failed`], [`Error::UnknownStream`].
    pub fn close(&mut self, id: StreamId) -> Result<(), Error> {
        let slot = self.live(id)?;
        if !slot.fin_sent {
            slot.fin_pending = true;
        }
        Ok(())
    }

    /// Drops a stream you will not read any more: sends FIN if not yet sent, discards what it
    /// holds and what still arrives for it, and frees the slot once the FIN is out.
    ///
    /// # Errors
    /// [`Error::Failed`], [`Error::UnknownStream`].
    pub fn abort(&mut self, id: StreamId) -> Result<(), Error> {
        let slot = self.live(id)?;
        slot.aborted = true;
        slot.len = 0;
        slot.ev_readable = false;
        if !slot.fin_sent {
            slot.fin_pending = true;
        }
        self.release_if_finished();
        Ok(())
    }

    fn release_if_finished(&mut self) {
        for s in self.slots.iter_mut() {
            if s.state == SlotState::Live && s.finished() {
                s.state = SlotState::Released;
            }
        }
    }

    /// Takes in bytes from the transport; returns how many it consumed.
    ///
    /// It consumes everything unless a stream's receive buffer is full: then it stops there (see
    /// the back-pressure note on [`Mux`]) and you feed the rest after a [`Mux::read`].
    ///
    /// # Errors
    /// A peer error ([`Error::is_peer_fault`]): the session is failed, every stream with it.
    /// [`Error::Failed`] afterwards.
    pub fn handle_input(&mut self, now: Instant, data: &[u8]) -> Result<usize, Error> {
        if self.error.is_some() {
            return Err(Error::Failed);
        }
        let mut i = 0;
        while i < data.len() {
            match self.rx {
                Rx::Header => {
                    let take = (HEADER_LEN - self.hdr_len).min(data.len() - i);
                    self.hdr[self.hdr_len..self.hdr_len + take].copy_from_slice(&data[i..i + take]);
                    self.hdr_len += take;
                    i += take;
                    match Header::parse(&self.hdr[..self.hdr_len], self.config.max_receive_frame) {
                        Err(e) => return Err(self.fail(e)),
                        Ok(Status::Partial) => {}
                        Ok(Status::Complete(h)) => {
                            self.hdr_len = 0;
                            self.last_rx = now;
                            self.on_header(h);
                        }
                    }
                }
                Rx::Data { slot, remaining } => {
                    let avail = (data.len() - i).min(usize::from(remaining));
                    let n = match slot {
                        Some(s) => {
                            let region = Self::region(&mut self.storage, self.cap, s);
                            let n = self.slots[s].push(region, &data[i..i + avail]);
                            if n > 0 {
                                self.slots[s].ev_readable = true;
                            }
                            n
                        }
                        None => avail,
                    };
                    if n == 0 {
                        trace!("smux: receive buffer full, pausing input");
                        break;
                    }
                    i += n;
                    // n ≤ remaining ≤ u16::MAX.
                    let remaining = remaining - n as u16;
                    self.rx = if remaining == 0 {
                        Rx::Header
                    } else {
                        Rx::Data { slot, remaining }
                    };
                }
            }
        }
        Ok(i)
    }

    fn on_header(&mut self, h: Header) {
        let found = self.find(h.stream_id);
        match h.cmd {
            Cmd::Nop => {}
            Cmd::Syn => {
                if found.is_some() {
                    return;
                }
                match self.slots.iter().position(|s| s.state == SlotState::Free) {
                    Some(i) => {
                        self.slots[i].reset(h.stream_id);
                        self.slots[i].ev_opened = true;
                    }
                    None => {
                        debug!("smux: no free slot, refusing a stream");
                        if self.refused_len < self.refused.len() {
                            self.refused[self.refused_len] = h.stream_id;
                            self.refused_len += 1;
                        }
                    }
                }
            }
            Cmd::Fin => {
                if let Some(i) = found {
                    let s = &mut self.slots[i];
                    s.fin_received = true;
                    if !s.aborted {
                        s.ev_readable = true;
                    }
                    self.release_if_finished();
                }
            }
            Cmd::Psh => {
                // Data for unknown, aborted or finished streams is dropped, as smux does.
                let slot = found.filter(|&i| !self.slots[i].aborted && !self.slots[i].fin_received);
                if h.length > 0 {
                    self.rx = Rx::Data {
                        slot,
                        remaining: h.length,
                    };
                }
            }
        }
    }

    /// Writes pending control frames (SYN, FIN, refusals, NOP) into `buf`, as many as fit;
    /// returns the bytes written, `None` when nothing is pending.
    ///
    /// # Errors
    /// [`InsufficientSize`] when `buf` cannot hold even one 8-byte frame and one is pending.
    pub fn poll_transmit(&mut self, buf: &mut [u8]) -> Result<Option<usize>, InsufficientSize> {
        if self.error.is_some() {
            return Ok(None);
        }
        let mut o = 0;
        let cap = buf.len();
        let fits = |o: usize| cap >= o + HEADER_LEN;
        for s in self.slots.iter_mut() {
            if s.state != SlotState::Live {
                continue;
            }
            if s.syn_pending && fits(o) {
                emit(&mut buf[o..], Cmd::Syn, 0, s.id);
                s.syn_pending = false;
                o += HEADER_LEN;
            }
            if s.fin_pending && !s.syn_pending && fits(o) {
                emit(&mut buf[o..], Cmd::Fin, 0, s.id);
                s.fin_pending = false;
                s.fin_sent = true;
                o += HEADER_LEN;
            }
        }
        while self.refused_len > 0 && fits(o) {
            self.refused_len -= 1;
            emit(&mut buf[o..], Cmd::Fin, 0, self.refused[self.refused_len]);
            o += HEADER_LEN;
        }
        if self.nop_pending && fits(o) {
            emit(&mut buf[o..], Cmd::Nop, 0, 0);
            self.nop_pending = false;
            o += HEADER_LEN;
        }
        self.release_if_finished();
        if o > 0 {
            return Ok(Some(o));
        }
        let pending = self.nop_pending
            || self.refused_len > 0
            || self
                .slots
                .iter()
                .any(|s| s.state == SlotState::Live && (s.syn_pending || s.fin_pending));
        if pending {
            Err(InsufficientSize {
                required: HEADER_LEN,
            })
        } else {
            Ok(None)
        }
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        for k in 0..S {
            let i = (self.event_cursor + k) % S;
            let s = &mut self.slots[i];
            let ev = match s.state {
                SlotState::Free => None,
                SlotState::Released => {
                    s.state = SlotState::Free;
                    Some(Event::Closed(StreamId(s.id)))
                }
                SlotState::Live if s.ev_opened => {
                    s.ev_opened = false;
                    Some(Event::Opened(StreamId(s.id)))
                }
                SlotState::Live if s.ev_readable => {
                    s.ev_readable = false;
                    Some(Event::Readable(StreamId(s.id)))
                }
                SlotState::Live => None,
            };
            if ev.is_some() {
                self.event_cursor = (i + 1) % S;
                return ev;
            }
        }
        None
    }

    /// When to call [`Mux::handle_timeout`] next (keep-alive), if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.error.is_some() {
            return None;
        }
        let k = self.config.keep_alive?;
        let dead = self.last_rx + k.timeout;
        Some(match self.nop_due {
            Some(n) if n < dead => n,
            _ => dead,
        })
    }

    /// Runs the keep-alive timers: queues a NOP when due, fails the session when the peer has
    /// been silent past the timeout.
    ///
    /// # Errors
    /// [`Error::KeepAliveTimeout`].
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), Error> {
        let Some(k) = self.config.keep_alive else {
            return Ok(());
        };
        if self.error.is_some() {
            return Err(Error::Failed);
        }
        if now >= self.last_rx + k.timeout {
            return Err(self.fail(Error::KeepAliveTimeout));
        }
        if let Some(due) = self.nop_due {
            if now >= due {
                self.nop_pending = true;
                self.nop_due = Some(now + k.interval);
            }
        }
        Ok(())
    }
}

/// Writes a header; the caller has checked that 8 bytes fit.
fn emit(buf: &mut [u8], cmd: Cmd, length: u16, stream_id: u32) {
    let h = Header {
        cmd,
        length,
        stream_id,
    };
    // Infallible: every caller checked the room first.
    let _ = h.emit(buf);
}
