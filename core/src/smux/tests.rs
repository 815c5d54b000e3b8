use std::vec;
use std::vec::Vec;

use proptest::prelude::*;

use super::frame::{Cmd, Frame, FrameRepr, Header};
use super::*;
use crate::time::Instant;
use crate::ws::Status;

const T0: Instant = Instant::from_millis(1_000);

fn no_keepalive() -> Config {
    Config {
        keep_alive: None,
        ..Config::default()
    }
}

#[test]
fn header_layout_and_byte_order() {
    // version 1, PSH, length 0x0102 little-endian, then stream id 0x0a0b0c0d little-endian.
    let mut b = [0u8; 8];
    Header {
        cmd: Cmd::Psh,
        length: 0x0102,
        stream_id: 0x0a0b_0c0d,
    }
    .emit(&mut b)
    .unwrap();
    assert_eq!(b, [1, 2, 0x02, 0x01, 0x0d, 0x0c, 0x0b, 0x0a]);
    let f = Frame::new_unchecked(&b[..]);
    assert_eq!(
        (f.version(), f.cmd_raw(), f.length(), f.stream_id()),
        (1, 2, 0x0102, 0x0a0b_0c0d)
    );
    assert_eq!(
        Frame::new_checked(&b[..]).map(|_| ()),
        Err(Error::Truncated)
    );

    let mut out = [0u8; 16];
    let n = FrameRepr {
        cmd: Cmd::Psh,
        stream_id: 3,
        payload: b"hi",
    }
    .emit(&mut out)
    .unwrap();
    assert_eq!(&out[..n], &[1, 2, 2, 0, 3, 0, 0, 0, b'h', b'i']);
    let f = Frame::new_checked(&out[..n]).unwrap();
    assert_eq!(f.payload(), b"hi");
    for k in 0..n {
        assert_eq!(
            FrameRepr::parse(&out[..k]),
            Ok(Status::Partial),
            "prefix {k}"
        );
    }
    assert_eq!(
        FrameRepr::parse(&out[..n]),
        Ok(Status::Complete((
            FrameRepr {
                cmd: Cmd::Psh,
                stream_id: 3,
                payload: b"hi"
            },
            10
        )))
    );
    assert_eq!(
        FrameRepr {
            cmd: Cmd::Syn,
            stream_id: 3,
            payload: b""
        }
        .emit(&mut out[..7]),
        Err(InsufficientSize { required: 8 })
    );
    for (c, v) in [(Cmd::Syn, 0u8), (Cmd::Fin, 1), (Cmd::Psh, 2), (Cmd::Nop, 3)] {
        assert_eq!(c.to_u8(), v);
        assert_eq!(Cmd::from_u8(v), Ok(c));
    }
}

#[test]
fn header_errors() {
    assert_eq!(Header::parse(&[2], 100), Err(Error::BadVersion));
    assert_eq!(
        Header::parse(&[0, 0, 0, 0, 0, 0, 0, 0], 100),
        Err(Error::BadVersion)
    );
    assert_eq!(
        Header::parse(&[1, 4], 100),
        Err(Error::BadCommand),
        "UPD is v2 only"
    );
    assert_eq!(
        Header::parse(&[1, 0xff, 0, 0, 0, 0, 0, 0], 100),
        Err(Error::BadCommand)
    );
    assert_eq!(
        Header::parse(&[1, 0, 5, 0, 3, 0, 0, 0], 100),
        Err(Error::BadLength)
    );
    assert_eq!(
        Header::parse(&[1, 3, 0, 1, 0, 0, 0, 0], 100),
        Err(Error::BadLength)
    );
    assert_eq!(
        Header::parse(&[1, 2, 101, 0, 3, 0, 0, 0], 100),
        Err(Error::FrameTooLarge)
    );
    assert!(matches!(
        Header::parse(&[1, 2, 100, 0, 3, 0, 0, 0], 100),
        Ok(Status::Complete(_))
    ));
    assert_eq!(Header::parse(&[1, 2, 100], 100), Ok(Status::Partial));
}

#[test]
fn keep_alive_by_agent_version() {
    for (v, off) in [
        ("3.1.1511.0", true),
        ("3.1.1512.0", true),
        ("3.2.0.0", true),
        ("10.0.0.0", true),
        ("3.1.1510.9", false),
        ("3.0.1390.0", false),
        ("2.3.722.0", false),
        ("", false),
        ("garbage", false),
        ("3.1.1511.0.1", false),
    ] {
        assert_eq!(agent_disables_keep_alive(v), off, "{v}");
        assert_eq!(Config::for_agent(v).keep_alive.is_none(), off);
    }
}

type M = Mux<[u8; 8 * 256], 8>;

/// Moves every pending control frame and nothing else from `a` to `b`.
fn pump_control(now: Instant, a: &mut M, b: &mut M) {
    let mut buf = [0u8; 128];
    while let Some(n) = a.poll_transmit(&mut buf).unwrap() {
        assert_eq!(b.handle_input(now, &buf[..n]).unwrap(), n);
    }
}

fn send(now: Instant, a: &mut M, b: &mut M, id: StreamId, data: &[u8]) {
    let mut rest = data;
    let mut buf = [0u8; 64];
    while !rest.is_empty() {
        let w = a.write(id, rest, &mut buf).unwrap();
        assert_eq!(b.handle_input(now, &buf[..w.len]).unwrap(), w.len);
        rest = &rest[w.consumed..];
    }
}

fn events(m: &mut M) -> Vec<Event> {
    core::iter::from_fn(|| m.poll_event()).collect()
}

fn read_all(m: &mut M, id: StreamId) -> (Vec<u8>, bool) {
    let mut v = Vec::new();
    let mut b = [0u8; 7];
    loop {
        match m.read(id, &mut b) {
            Ok(Some(n)) => v.extend_from_slice(&b[..n]),
            Ok(None) => return (v, true),
            Err(Error::Blocked) => return (v, false),
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn open_write_fin_both_ways() {
    let mut c = M::new(no_keepalive(), Role::Client, T0, [0; 8 * 256]);
    let mut s = M::new(no_keepalive(), Role::Server, T0, [0; 8 * 256]);
    let a = c.open().unwrap();
    let b = c.open().unwrap();
    assert_eq!(
        (a, b),
        (StreamId(3), StreamId(5)),
        "smux client ids start at 3, step 2"
    );
    // The SYN rides along with the first data.
    send(
        T0,
        &mut c,
        &mut s,
        a,
        b"hello over smux, longer than one 64-byte output buffer can hold at once",
    );
    pump_control(T0, &mut c, &mut s);
    // Events rotate over streams (fairness); per stream, Opened comes first.
    assert_eq!(
        events(&mut s),
        [Event::Opened(a), Event::Opened(b), Event::Readable(a)]
    );
    assert_eq!(
        read_all(&mut s, a),
        (
            b"hello over smux, longer than one 64-byte output buffer can hold at once".to_vec(),
            false
        )
    );
    assert_eq!(s.read(b, &mut [0; 4]), Err(Error::Blocked));

    // Server-opened stream gets an even id.
    let z = s.open().unwrap();
    assert_eq!(z, StreamId(2));
    pump_control(T0, &mut s, &mut c);
    assert_eq!(events(&mut c), [Event::Opened(z)]);

    // Client half-closes `a`; the server still answers on it, then closes.
    c.close(a).unwrap();
    c.close(a).unwrap();
    assert_eq!(c.write(a, b"x", &mut [0; 32]), Err(Error::StreamClosed));
    pump_control(T0, &mut c, &mut s);
    assert_eq!(events(&mut s), [Event::Readable(a)]);
    assert_eq!(read_all(&mut s, a), (vec![], true));
    send(T0, &mut s, &mut c, a, b"reply after fin");
    s.close(a).unwrap();
    pump_control(T0, &mut s, &mut c);
    assert_eq!(
        events(&mut s),
        [Event::Closed(a)],
        "server: fin both ways and eof read"
    );
    assert_eq!(events(&mut c), [Event::Readable(a)]);
    assert_eq!(read_all(&mut c, a), (b"reply after fin".to_vec(), true));
    assert_eq!(events(&mut c), [Event::Closed(a)]);
    assert_eq!(c.read(a, &mut [0; 4]), Err(Error::UnknownStream));
    assert_eq!(c.stream_count(), 2);
    assert_eq!(s.stream_count(), 2);
}

#[test]
fn interleaved_streams() {
    let mut c = M::new(no_keepalive(), Role::Client, T0, [0; 8 * 256]);
    let mut s = M::new(no_keepalive(), Role::Server, T0, [0; 8 * 256]);
    let ids: Vec<StreamId> = (0..6).map(|_| c.open().unwrap()).collect();
    let payload = |k: usize| -> Vec<u8> { (0..200).map(|i| (i * 13 + k * 31) as u8).collect() };
    // Round-robin 10-byte writes.
    for round in 0..20 {
        for (k, id) in ids.iter().enumerate() {
            send(
                T0,
                &mut c,
                &mut s,
                *id,
                &payload(k)[round * 10..round * 10 + 10],
            );
        }
    }
    for id in &ids {
        c.close(*id).unwrap();
    }
    pump_control(T0, &mut c, &mut s);
    for (k, id) in ids.iter().enumerate() {
        assert_eq!(read_all(&mut s, *id), (payload(k), true));
    }
}

/// Concatenated frames.
fn frames(list: &[(Cmd, u32, &[u8])]) -> Vec<u8> {
    let mut v = Vec::new();
    for &(cmd, stream_id, payload) in list {
        let mut b = vec![0u8; 8 + payload.len()];
        let n = FrameRepr {
            cmd,
            stream_id,
            payload,
        }
        .emit(&mut b)
        .unwrap();
        v.extend_from_slice(&b[..n]);
    }
    v
}

/// Frames a peer (server role) might send: SYN 2, data, NOP, data for an unknown stream, FIN.
fn peer_stream() -> Vec<u8> {
    frames(&[
        (Cmd::Syn, 2, b""),
        (Cmd::Psh, 2, b"first "),
        (Cmd::Nop, 0, b""),
        (Cmd::Psh, 99, b"nobody listens"),
        (Cmd::Fin, 77, b""),
        (Cmd::Syn, 2, b""),
        (Cmd::Psh, 2, b"second"),
        (Cmd::Psh, 2, b""),
        (Cmd::Fin, 2, b""),
    ])
}

#[test]
fn every_split_offset() {
    let stream = peer_stream();
    for k in 0..=stream.len() {
        let mut c = M::new(no_keepalive(), Role::Client, T0, [0; 8 * 256]);
        assert_eq!(c.handle_input(T0, &stream[..k]).unwrap(), k);
        assert_eq!(c.handle_input(T0, &stream[k..]).unwrap(), stream.len() - k);
        assert_eq!(
            events(&mut c),
            [Event::Opened(StreamId(2)), Event::Readable(StreamId(2))]
        );
        assert_eq!(
            read_all(&mut c, StreamId(2)),
            (b"first second".to_vec(), true),
            "split {k}"
        );
    }
    let mut c = M::new(no_keepalive(), Role::Client, T0, [0; 8 * 256]);
    for b in &stream {
        assert_eq!(c.handle_input(T0, core::slice::from_ref(b)).unwrap(), 1);
    }
    assert_eq!(
        read_all(&mut c, StreamId(2)),
        (b"first second".to_vec(), true)
    );
}

#[test]
fn garbage_fails_the_session() {
    let cfg = Config {
        max_receive_frame: 1024,
        ..no_keepalive()
    };
    for (input, err) in [
        (&[9u8, 0, 0, 0, 3, 0, 0, 0][..], Error::BadVersion),
        (&[1, 7, 0, 0, 3, 0, 0, 0], Error::BadCommand),
        (&[1, 1, 4, 0, 3, 0, 0, 0], Error::BadLength),
        (&[1, 2, 0xff, 0xff, 3, 0, 0, 0], Error::FrameTooLarge),
        // HTTP bytes where smux was expected.
        (b"GET / HTTP/1.1\r\n", Error::BadVersion),
    ] {
        let mut c = M::new(cfg, Role::Client, T0, [0; 8 * 256]);
        let id = c.open().unwrap();
        assert_eq!(c.handle_input(T0, input), Err(err));
        assert!(err.is_peer_fault());
        assert_eq!(c.error(), Some(err));
        assert_eq!(
            c.handle_input(T0, &[1, 3, 0, 0, 0, 0, 0, 0]),
            Err(Error::Failed)
        );
        assert_eq!(c.read(id, &mut [0; 4]), Err(Error::Failed));
        assert_eq!(c.open(), Err(Error::Failed));
        assert_eq!(c.poll_transmit(&mut [0; 64]), Ok(None));
    }
    use std::string::ToString;
    assert_eq!(Error::BadVersion.to_string(), "smux frame version is not 1");
}

#[test]
fn back_pressure_stops_input_and_resumes() {
    let mut c = Mux::<[u8; 2 * 16], 2>::new(no_keepalive(), Role::Client, T0, [0; 2 * 16]);
    let data: Vec<u8> = (0..40u8).collect();
    let wire = frames(&[
        (Cmd::Syn, 2, &[]),
        (Cmd::Psh, 2, &data),
        (Cmd::Syn, 4, &[]),
        (Cmd::Psh, 4, b"behind"),
    ]);
    let mut got = Vec::new();
    let mut rest = &wire[..];
    let mut stalls = 0;
    while !rest.is_empty() {
        let n = c.handle_input(T0, rest).unwrap();
        rest = &rest[n..];
        if !rest.is_empty() {
            stalls += 1;
            assert!(
                c.readable_len(StreamId(2)) == 16,
                "stopped only because the buffer is full"
            );
            let mut out = [0u8; 5];
            let k = c.read(StreamId(2), &mut out).unwrap().unwrap();
            got.extend_from_slice(&out[..k]);
        }
    }
    assert!(stalls >= 3);
    let mut out = [0u8; 64];
    let k = c.read(StreamId(2), &mut out).unwrap().unwrap();
    got.extend_from_slice(&out[..k]);
    assert_eq!(got, data);
    assert_eq!(c.read(StreamId(4), &mut out), Ok(Some(6)));
    assert_eq!(&out[..6], b"behind");
}

#[test]
fn refuse_when_full_and_abort_discards() {
    let mut storage = [0u8; 16];
    let mut c = Mux::<&mut [u8], 1>::new(no_keepalive(), Role::Client, T0, &mut storage[..]);
    let wire = frames(&[
        (Cmd::Syn, 2, &[]),
        (Cmd::Syn, 4, &[]),
        (Cmd::Psh, 4, b"lost"),
    ]);
    let mut b = [0u8; 64];
    assert_eq!(c.handle_input(T0, &wire), Ok(wire.len()));
    assert_eq!(c.open(), Err(Error::TooManyStreams));
    let mut out = [0u8; 64];
    assert_eq!(c.poll_transmit(&mut out), Ok(Some(8)));
    assert_eq!(out[..8], [1, 1, 0, 0, 4, 0, 0, 0], "FIN refuses stream 4");

    // Abort stream 2: FIN goes out, later data is discarded and never blocks input.
    c.abort(StreamId(2)).unwrap();
    assert_eq!(c.poll_transmit(&mut out), Ok(Some(8)));
    assert_eq!(out[..8], [1, 1, 0, 0, 2, 0, 0, 0]);
    assert_eq!(
        core::iter::from_fn(|| c.poll_event()).collect::<Vec<_>>(),
        [Event::Closed(StreamId(2))],
        "an aborted stream reports only its release"
    );
    let n = FrameRepr {
        cmd: Cmd::Psh,
        stream_id: 2,
        payload: &[7; 40],
    }
    .emit(&mut b)
    .unwrap();
    assert_eq!(c.handle_input(T0, &b[..n]), Ok(n));
    assert_eq!(c.stream_count(), 0);
    assert_eq!(c.open(), Ok(StreamId(3)));
    assert_eq!(
        c.poll_transmit(&mut out[..7]),
        Err(InsufficientSize { required: 8 })
    );
    assert_eq!(
        c.write(StreamId(3), b"x", &mut out[..16]),
        Err(Error::BufferTooSmall)
    );
    assert_eq!(
        c.write(StreamId(3), b"xy", &mut out[..17]),
        Ok(Written {
            consumed: 1,
            len: 17
        })
    );
}

fn at(secs: u64) -> Instant {
    T0 + crate::time::Duration::from_secs(secs)
}

#[test]
fn keep_alive_nop_and_timeout() {
    let mut c = M::new(Config::default(), Role::Client, T0, [0; 8 * 256]);
    assert_eq!(c.poll_timeout(), Some(at(10)));
    c.handle_timeout(at(10)).unwrap();
    let mut out = [0u8; 16];
    assert_eq!(c.poll_transmit(&mut out), Ok(Some(8)));
    assert_eq!(out[..8], [1, 3, 0, 0, 0, 0, 0, 0]);
    assert_eq!(c.poll_transmit(&mut out), Ok(None));
    // Peer traffic at 25 s pushes the silence deadline to 55 s; NOPs keep their 10 s rhythm.
    c.handle_input(at(25), &[1, 3, 0, 0, 0, 0, 0, 0]).unwrap();
    c.handle_timeout(at(31)).unwrap();
    assert_eq!(c.poll_transmit(&mut out), Ok(Some(8)));
    assert_eq!(c.poll_timeout(), Some(at(41)));
    c.handle_timeout(at(41)).unwrap();
    assert_eq!(c.poll_timeout(), Some(at(51)));
    c.handle_timeout(at(51)).unwrap();
    assert_eq!(c.poll_timeout(), Some(at(55)));
    c.handle_timeout(at(54)).unwrap();
    assert_eq!(c.handle_timeout(at(55)), Err(Error::KeepAliveTimeout));
    assert_eq!(c.error(), Some(Error::KeepAliveTimeout));
    assert_eq!(c.poll_timeout(), None);

    // Disabled: no timer, no NOP.
    let mut d = M::new(
        Config::for_agent("3.3.40.0"),
        Role::Client,
        T0,
        [0; 8 * 256],
    );
    assert_eq!(d.poll_timeout(), None);
    d.handle_timeout(at(3600)).unwrap();
    assert_eq!(d.poll_transmit(&mut out), Ok(None));
}

proptest! {
    #[test]
    fn round_trip_any_chunking(
        writes in proptest::collection::vec((0usize..4, proptest::collection::vec(any::<u8>(), 1..120)), 1..40),
        out_len in 18usize..100,
        chunk in 1usize..50,
    ) {
        let cfg = Config { max_frame_size: 33, ..no_keepalive() };
        let mut c = Mux::<[u8; 4 * 64], 4>::new(cfg, Role::Client, T0, [0; 4 * 64]);
        let mut s = Mux::<[u8; 4 * 64], 4>::new(cfg, Role::Server, T0, [0; 4 * 64]);
        let ids: Vec<StreamId> = (0..4).map(|_| c.open().unwrap()).collect();
        let mut wire = Vec::new();
        let mut expect = vec![Vec::new(); 4];
        let mut out = vec![0u8; out_len];
        for (k, data) in &writes {
            let mut rest = &data[..];
            while !rest.is_empty() {
                let w = c.write(ids[*k], rest, &mut out).unwrap();
                wire.extend_from_slice(&out[..w.len]);
                rest = &rest[w.consumed..];
            }
            expect[*k].extend_from_slice(data);
        }
        for id in &ids { c.close(*id).unwrap(); }
        while let Some(n) = c.poll_transmit(&mut out).unwrap() { wire.extend_from_slice(&out[..n]); }
        // Feed in chunks, draining every stream whenever input stalls.
        let mut got = vec![Vec::new(); 4];
        let mut fin = [false; 4];
        let mut pos = 0;
        while pos < wire.len() || fin.iter().any(|f| !f) {
            let end = (pos + chunk).min(wire.len());
            let n = s.handle_input(T0, &wire[pos..end]).unwrap();
            pos += n;
            for (k, id) in ids.iter().enumerate() {
                let mut b = [0u8; 16];
                loop {
                    match s.read(*id, &mut b) {
                        Ok(Some(m)) => got[k].extend_from_slice(&b[..m]),
                        Ok(None) => { fin[k] = true; break }
                        Err(Error::Blocked) | Err(Error::UnknownStream) => break,
                        Err(e) => panic!("{e}"),
                    }
                }
            }
            prop_assert!(n > 0 || pos == wire.len() || end == pos, "no progress");
        }
        prop_assert_eq!(got, expect);
    }

    #[test]
    fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut c = Mux::<[u8; 2 * 8], 2>::new(Config::default(), Role::Client, T0, [0; 2 * 8]);
        let mut rest = &data[..];
        while let Ok(n) = c.handle_input(T0, rest) {
            rest = &rest[n..];
            while c.poll_event().is_some() {}
            for id in [2, 4, 6] { let _ = c.read(StreamId(id), &mut [0; 3]); }
            if rest.is_empty() || n == 0 { break; }
        }
        let _ = c.poll_transmit(&mut [0; 64]);
        let _ = FrameRepr::parse(&data);
    }
}
