//! TLS 1.3 on any `embedded-io-async` stream, through embedded-tls, with server certificate
//! verification.
//!
//! What is verified with [`Verification::Root`]:
//! - the chain the server sends, walked linearly from your one root down to the leaf: each
//!   certificate's signature by the one above it (ECDSA P-256/SHA-256 always; RSA PKCS#1 v1.5 with
//!   feature `tls-rsa`),
//! - the leaf's DNS names (SAN, else CN) against the server name you connect to,
//! - the server's CertificateVerify signature over the handshake (ECDSA P-256, or RSA-PSS with
//!   `tls-rsa`), which proves it holds the leaf's key.
//!
//! What is **not** verified: validity periods (a device rarely knows the date; embedded-tls checks
//! them only with a clock, and this module passes none), revocation, name constraints, key usage.
//! embedded-tls 0.19 trusts exactly one root and expects the chain in order without a
//! cross-signed root appended (EMBEDDED.md).
//!
//! [`Verification::DangerousNoVerification`] turns all of it off: anyone on the path can then
//! read the session token. It exists for lab setups only.

use embedded_io_async::{Read, Write};
use embedded_tls::{
    pki::CertVerifier, Aes128GcmSha256, Certificate, CryptoProvider, NoClock, NoVerify, TlsConfig,
    TlsConnection, TlsContext, TlsError, TlsVerifier,
};
use rand_core::{CryptoRng, RngCore};

pub use embedded_tls::TlsError as Error;

/// The cipher suite this client offers: TLS_AES_128_GCM_SHA256 (mandatory in TLS 1.3, offered
/// by every server, and the smallest in flash).
pub type CipherSuite = Aes128GcmSha256;

/// A TLS connection as this crate opens it.
pub type Connection<'a, S> = TlsConnection<'a, S, CipherSuite>;

/// Largest certificate message the verifier keeps for the CertificateVerify check: an RSA-2048
/// leaf plus intermediate is about 3 KiB; 4 KiB leaves room.
const CERT_SIZE: usize = 4096;

/// How the server's certificate is checked.
#[derive(Clone, Copy)]
pub enum Verification<'a> {
    /// Verify the chain against this root certificate (DER), and the leaf against the server
    /// name. See the module docs for what exactly is verified.
    Root(&'a [u8]),
    /// Verify nothing. Anyone on the path can read the token. Never for production.
    DangerousNoVerification,
}

impl core::fmt::Debug for Verification<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Verification::Root(der) => write!(f, "Root({} bytes)", der.len()),
            Verification::DangerousNoVerification => f.write_str("DangerousNoVerification"),
        }
    }
}

/// What to connect to and how to trust it.
#[derive(Debug, Clone, Copy)]
pub struct Options<'a> {
    /// The host name to verify (and to send as SNI): the StreamUrl's host.
    pub server_name: &'a str,
    /// The trust decision.
    pub verification: Verification<'a>,
}

#[allow(
    clippy::large_enum_variant,
    reason = "lives only during the handshake; no heap to box it on a device"
)]
enum Verifier<'a> {
    Root(CertVerifier<'a, CipherSuite, NoClock, CERT_SIZE>),
    None(NoVerify),
}

impl TlsVerifier<CipherSuite> for Verifier<'_> {
    fn set_hostname_verification(&mut self, hostname: &str) -> Result<(), TlsError> {
        match self {
            Verifier::Root(v) => v.set_hostname_verification(hostname),
            Verifier::None(v) => TlsVerifier::<CipherSuite>::set_hostname_verification(v, hostname),
        }
    }

    fn verify_certificate(
        &mut self,
        transcript: &<CipherSuite as embedded_tls::TlsCipherSuite>::Hash,
        cert: embedded_tls::CertificateRef,
    ) -> Result<(), TlsError> {
        match self {
            Verifier::Root(v) => v.verify_certificate(transcript, cert),
            Verifier::None(v) => {
                TlsVerifier::<CipherSuite>::verify_certificate(v, transcript, cert)
            }
        }
    }

    fn verify_signature(
        &mut self,
        verify: embedded_tls::CertificateVerifyRef,
    ) -> Result<(), TlsError> {
        match self {
            Verifier::Root(v) => v.verify_signature(verify),
            Verifier::None(v) => TlsVerifier::<CipherSuite>::verify_signature(v, verify),
        }
    }
}

struct Provider<'a, R> {
    rng: R,
    verifier: Verifier<'a>,
}

impl<R: RngCore + CryptoRng> CryptoProvider for Provider<'_, R> {
    type CipherSuite = CipherSuite;
    type Signature = &'static [u8];

    fn rng(&mut self) -> impl rand_core::CryptoRngCore {
        &mut self.rng
    }

    fn verifier(&mut self) -> Result<&mut impl TlsVerifier<CipherSuite>, TlsError> {
        Ok(&mut self.verifier)
    }
}

/// Opens a TLS 1.3 connection over `socket` and runs the handshake.
///
/// `read_buf` holds one incoming TLS record: 16640 bytes is the protocol maximum and the safe
/// size (servers do not negotiate smaller records with this client). `write_buf` holds one
/// outgoing record: 4 KiB is plenty for session frames. `rng` must be a cryptographic RNG (the
/// key exchange depends on it).
///
/// # Errors
/// The [`TlsError`] of the handshake: `InvalidCertificate` / `InvalidSignature` when verification
/// fails, `Io` when the transport fails.
pub async fn connect<'a, S, R>(
    socket: S,
    read_buf: &'a mut [u8],
    write_buf: &'a mut [u8],
    options: Options<'_>,
    rng: R,
) -> Result<Connection<'a, S>, TlsError>
where
    S: Read + Write + 'a,
    R: RngCore + CryptoRng,
{
    let mut conn = TlsConnection::new(socket, read_buf, write_buf);
    let config = TlsConfig::new().with_server_name(options.server_name);
    #[cfg(feature = "tls-rsa")]
    let config = config.enable_rsa_signatures();
    let verifier = match options.verification {
        Verification::Root(der) => Verifier::Root(CertVerifier::new(Certificate::X509(der))),
        Verification::DangerousNoVerification => {
            warn!("tls: server certificate NOT verified (dangerous option)");
            Verifier::None(NoVerify)
        }
    };
    conn.open(TlsContext::new(&config, Provider { rng, verifier }))
        .await?;
    debug!("tls: handshake complete");
    Ok(conn)
}
