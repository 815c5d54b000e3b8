//! rustls's unbuffered client (what a device without std would run) with the RustCrypto
//! provider, against a rustls server that offers only TLS 1.2, in memory on one thread:
//! handshake to the tests' RSA-2048 chain (root -> intermediate -> leaf), one record each way.
//! Prints the negotiated version and the client's heap high-water mark: only allocations made
//! while the client runs are counted. `cargo run --release` from this directory.
#![allow(
    unsafe_code,
    reason = "a counting GlobalAlloc forwards to System, which is unsafe to call"
)]

use rustls::client::UnbufferedClientConnection;
use rustls::unbuffered::ConnectionState;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::*};
use std::sync::Arc;

struct Counting;
static ON: AtomicBool = AtomicBool::new(false);
static CUR: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if ON.load(Relaxed) {
            let c = CUR.fetch_add(l.size(), Relaxed) + l.size();
            PEAK.fetch_max(c, Relaxed);
        }
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        if ON.load(Relaxed) {
            CUR.fetch_sub(l.size(), Relaxed);
        }
        unsafe { System.dealloc(p, l) }
    }
}
#[global_allocator]
static A: Counting = Counting;

fn main() {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../../adapters/embassy/tests/data/rsa"
    );
    let read = |f: &str| std::fs::read(format!("{dir}/{f}")).unwrap();
    let chain = vec![
        CertificateDer::from_pem_slice(&read("leaf.pem")).unwrap(),
        CertificateDer::from_pem_slice(&read("int.pem")).unwrap(),
    ];
    let key = PrivateKeyDer::from_pem_slice(&read("leaf.pk8.pem")).unwrap();
    let server_cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS12])
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    let mut server = rustls::ServerConnection::new(Arc::new(server_cfg)).unwrap();

    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(read("root.der"))).unwrap();
    ON.store(true, Relaxed);
    let client_cfg =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls_rustcrypto::provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    let mut client = UnbufferedClientConnection::new(
        Arc::new(client_cfg),
        ServerName::try_from("localhost").unwrap(),
    )
    .unwrap();
    ON.store(false, Relaxed);
    let mut incoming = vec![0u8; 16640];
    let mut outgoing = vec![0u8; 16640];
    let (mut filled, mut sent_app, mut got_echo) = (0usize, false, false);
    let mut version = None;
    for _ in 0..1000 {
        ON.store(true, Relaxed);
        let st = client.process_tls_records(&mut incoming[..filled]);
        let discard = st.discard;
        let mut to_server: Vec<u8> = Vec::new();
        let mut need_read = false;
        match st.state {
            Ok(ConnectionState::EncodeTlsData(mut s)) => {
                let n = s.encode(&mut outgoing).unwrap();
                to_server.extend_from_slice(&outgoing[..n]);
            }
            Ok(ConnectionState::TransmitTlsData(s)) => s.done(),
            Ok(ConnectionState::BlockedHandshake) => need_read = true,
            Ok(ConnectionState::WriteTraffic(mut w)) => {
                if !sent_app {
                    let n = w.encrypt(b"ping over tls", &mut outgoing).unwrap();
                    to_server.extend_from_slice(&outgoing[..n]);
                    sent_app = true;
                }
                need_read = true;
            }
            Ok(ConnectionState::ReadTraffic(mut r)) => {
                while let Some(rec) = r.next_record() {
                    let rec = rec.unwrap();
                    assert_eq!(rec.payload, b"ping over tls");
                    got_echo = true;
                }
            }
            Ok(_) => break,
            Err(e) => panic!("client: {e:?}"),
        }
        ON.store(false, Relaxed);
        incoming.copy_within(discard..filled, 0);
        filled -= discard;
        if got_echo {
            break;
        }
        if !to_server.is_empty() {
            server.read_tls(&mut &to_server[..]).unwrap();
            server.process_new_packets().unwrap();
            version = server.protocol_version();
            let mut buf = [0u8; 64];
            if let Ok(n) = std::io::Read::read(&mut server.reader(), &mut buf) {
                if n > 0 {
                    std::io::Write::write_all(&mut server.writer(), &buf[..n]).unwrap();
                }
            }
        }
        if need_read {
            let mut out = Vec::new();
            while server.wants_write() {
                server.write_tls(&mut out).unwrap();
            }
            incoming[filled..filled + out.len()].copy_from_slice(&out);
            filled += out.len();
        }
    }
    assert!(got_echo, "no echo");
    println!("negotiated {version:?}; client heap high-water mark {} bytes (rustls unbuffered client, rustls-rustcrypto provider, RSA-2048 chain)", PEAK.load(Relaxed));
}
