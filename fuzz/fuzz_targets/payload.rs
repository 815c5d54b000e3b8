//! Every control payload parser on the same input. Whatever parses must emit, and what is emitted
//! must parse back to an equal value; nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ssm_proto::payload::{
    Acknowledge, ChannelClosed, CommandProperties, EncChallenge, Error, ExitCode, Flag,
    HandshakeComplete, HandshakeRequest, HandshakeResponse, OpenDataChannelInput,
    PortProperties, Size,
};

macro_rules! round_trip {
    ($ty:ident, $data:expr, $buf:expr) => {
        if let Ok(v) = $ty::parse($data) {
            let n = match v.emit($buf) {
                Ok(n) => n,
                // Unescaped text may need more room than the input (control characters).
                Err(Error::BufferTooSmall { .. }) => return,
                Err(e) => panic!("{} parsed but does not emit: {e}", stringify!($ty)),
            };
            let back = $ty::parse(&$buf[..n])
                .unwrap_or_else(|e| panic!("{} emitted what it cannot parse: {e}", stringify!($ty)));
            assert_eq!(back, v, "{} changed in a round trip", stringify!($ty));
        }
    };
}

fuzz_target!(|data: &[u8]| {
    let mut buf = vec![0u8; data.len() * 6 + 64];
    let buf = &mut buf[..];
    round_trip!(Acknowledge, data, buf);
    round_trip!(Size, data, buf);
    round_trip!(HandshakeComplete, data, buf);
    round_trip!(EncChallenge, data, buf);
    round_trip!(ChannelClosed, data, buf);
    round_trip!(OpenDataChannelInput, data, buf);
    round_trip!(Flag, data, buf);
    round_trip!(ExitCode, data, buf);
    round_trip!(PortProperties, data, buf);
    round_trip!(CommandProperties, data, buf);
    round_trip!(HandshakeResponse, data, buf);
    if let Ok(r) = HandshakeRequest::parse(data) {
        // Properties of any session type go through both properties parsers.
        for a in r.actions() {
            if let ssm_proto::payload::Action::SessionType { properties: Some(p), .. } = a {
                let _ = PortProperties::parse(p.as_bytes());
                let _ = CommandProperties::parse(p.as_bytes());
            }
        }
        let _ = r.session_type();
        let _ = r.kms_key_id();
    }
    round_trip!(HandshakeRequest, data, buf);
});
