//! What a device would carry to reach an endpoint that offers only TLS 1.2: a TLS client
//! linked on its own, fed by a transport the optimiser cannot see through, so everything the
//! handshake, the verification of an RSA chain and one record each way need is kept.
//!
//! - `--features rustls`: rustls 0.23 without std (its unbuffered API, TLS 1.2 and 1.3), with the
//!   RustCrypto provider (`rustls-rustcrypto`), on a heap.
//! - `--features embedded-tls`: `ssm_embassy::tls` (embedded-tls, TLS 1.3 only), the baseline.
//!
//! `cargo size --release --features rustls`, then `--features embedded-tls`: flash is text +
//! data. Not run (no server here); `../host` runs the rustls client against a TLS 1.2-only server
//! and measures its heap.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

extern crate alloc;

use core::hint::black_box;
use core::mem::MaybeUninit;
use core::panic::PanicInfo;

use cortex_m_rt::entry;
use linked_list_allocator::LockedHeap;
use static_cell::ConstStaticCell;

#[global_allocator]
static HEAP: LockedHeap = LockedHeap::empty();
static HEAP_MEMORY: ConstStaticCell<[MaybeUninit<u8>; 32 * 1024]> =
    ConstStaticCell::new([MaybeUninit::uninit(); 32 * 1024]);

/// An RSA-2048 root (the tests' own).
static ROOT: &[u8] = include_bytes!("../../../../../adapters/embassy/tests/data/rsa/root.der");
/// The name verified.
const NAME: &str = "ssmmessages.eu-west-1.amazonaws.com";

/// "Reads" bytes the optimiser cannot predict.
fn read_in(buf: &mut [u8]) -> usize {
    for b in buf.iter_mut() {
        *b = black_box(0);
    }
    black_box(buf.len())
}

#[cfg(feature = "rustls")]
mod with_rustls {
    use alloc::sync::Arc;

    use rustls::client::UnbufferedClientConnection;
    use rustls::unbuffered::ConnectionState;
    use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

    use super::{black_box, read_in, NAME, ROOT};

    /// rustls without std takes the time for certificate validity from the application.
    #[derive(Debug)]
    struct Clock;

    impl rustls::time_provider::TimeProvider for Clock {
        fn current_time(&self) -> Option<UnixTime> {
            let secs = black_box(1_796_000_000);
            Some(UnixTime::since_unix_epoch(core::time::Duration::from_secs(
                secs,
            )))
        }
    }

    pub fn run() {
        let mut roots = rustls::RootCertStore::empty();
        let _ = roots.add(CertificateDer::from(ROOT));
        let provider = Arc::new(rustls_rustcrypto::provider());
        let Ok(builder) = rustls::ClientConfig::builder_with_details(provider, Arc::new(Clock))
            .with_safe_default_protocol_versions()
        else {
            return;
        };
        let config = builder.with_root_certificates(roots).with_no_client_auth();
        let Ok(name) = ServerName::try_from(NAME) else {
            return;
        };
        let Ok(mut conn) = UnbufferedClientConnection::new(Arc::new(config), name) else {
            return;
        };
        let mut incoming = [0u8; 16640];
        let mut outgoing = [0u8; 4096];
        let mut filled = 0;
        loop {
            let status = conn.process_tls_records(&mut incoming[..filled]);
            let discard = status.discard;
            match status.state {
                Ok(ConnectionState::EncodeTlsData(mut s)) => {
                    let n = s.encode(&mut outgoing).unwrap_or(0);
                    black_box(&outgoing[..n]);
                }
                Ok(ConnectionState::TransmitTlsData(s)) => s.done(),
                Ok(ConnectionState::BlockedHandshake) => {
                    filled += read_in(&mut incoming[filled..]);
                }
                Ok(ConnectionState::WriteTraffic(mut w)) => {
                    let n = w
                        .encrypt(b"POST / HTTP/1.1\r\n", &mut outgoing)
                        .unwrap_or(0);
                    black_box(&outgoing[..n]);
                    filled += read_in(&mut incoming[filled..]);
                }
                Ok(ConnectionState::ReadTraffic(mut r)) => {
                    while let Some(Ok(record)) = r.next_record() {
                        black_box(record.payload);
                    }
                }
                Ok(_) | Err(_) => return,
            }
            incoming.copy_within(discard..filled, 0);
            filled -= discard;
        }
    }

    /// The device's RNG would go here (a hardware RNG); rustls-rustcrypto asks getrandom.
    fn fill(dest: &mut [u8]) -> Result<(), getrandom::Error> {
        for b in dest {
            *b = black_box(4);
        }
        Ok(())
    }

    getrandom::register_custom_getrandom!(fill);
}

#[cfg(feature = "embedded-tls")]
mod with_embedded_tls {
    use embedded_io_async::{ErrorType, Read, Write};

    use super::{black_box, read_in, NAME, ROOT};

    struct Opaque;

    impl ErrorType for Opaque {
        type Error = embedded_io::ErrorKind;
    }

    impl Read for Opaque {
        async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
            Ok(read_in(buf))
        }
    }

    impl Write for Opaque {
        async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
            black_box(buf);
            Ok(buf.len())
        }

        async fn flush(&mut self) -> Result<(), Self::Error> {
            Ok(())
        }
    }

    struct Rng;

    impl rand_core::RngCore for Rng {
        fn next_u32(&mut self) -> u32 {
            black_box(4)
        }

        fn next_u64(&mut self) -> u64 {
            black_box(4)
        }

        fn fill_bytes(&mut self, dest: &mut [u8]) {
            for b in dest {
                *b = black_box(4);
            }
        }

        fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
            self.fill_bytes(dest);
            Ok(())
        }
    }

    impl rand_core::CryptoRng for Rng {}

    pub fn run() {
        let mut rx = [0u8; 16640];
        let mut tx = [0u8; 4096];
        let options = ssm_embassy::tls::Options {
            server_name: NAME,
            verification: ssm_embassy::tls::Verification::Root(ROOT),
        };
        embassy_futures::block_on(async {
            let Ok(mut c) = ssm_embassy::tls::connect(Opaque, &mut rx, &mut tx, options, Rng).await
            else {
                return;
            };
            let _ = c.write_all(b"POST / HTTP/1.1\r\n").await;
            let _ = c.flush().await;
            let mut b = [0u8; 512];
            let _ = black_box(c.read(&mut b).await);
        });
    }
}

#[entry]
fn main() -> ! {
    HEAP.lock().init_from_slice(HEAP_MEMORY.take());
    #[cfg(feature = "rustls")]
    with_rustls::run();
    #[cfg(feature = "embedded-tls")]
    with_embedded_tls::run();
    loop {
        cortex_m::asm::wfi();
    }
}

#[panic_handler]
fn panic(_: &PanicInfo) -> ! {
    loop {
        cortex_m::asm::wfi();
    }
}
