//! TLS 1.3 on any `embedded-io-async` stream, through embedded-tls, with server certificate
//! verification.
//!
//! What is verified with [`Verification::Root`]:
//! - the chain the server sends, walked linearly from your one root down to the leaf: each
//!   certificate's signature by the one above it (ECDSA P-256/SHA-256 always; RSA PKCS#1 v1.5 with
//!   feature `tls-rsa`),
//! - that every issuer the server sends is a CA (basicConstraints `cA`; this crate checks it,
//!   embedded-tls 0.19 does not),
//! - the leaf's DNS names (SAN, else CN) against the server name you connect to,
//! - the server's CertificateVerify signature over the handshake (ECDSA P-256, or RSA-PSS with
//!   `tls-rsa`), which proves it holds the leaf's key.
//!
//! What is **not** verified: path length constraints, validity periods (a device rarely knows the date; embedded-tls checks
//! them only with a clock, and this module passes none), revocation, name constraints, key usage.
//! embedded-tls 0.19 trusts exactly one root and walks the chain in order from it. Servers often
//! append more than the path to that root (a cross-signed copy of the root and its issuer, as
//! some ACM-issued chains under Amazon Root CA 1 do, or the root itself): this module cuts the
//! chain after the first certificate whose issuer is the root's subject, before embedded-tls
//! sees it.
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
    /// embedded-tls's verifier and the root (DER) it was given.
    Root(CertVerifier<'a, CipherSuite, NoClock, CERT_SIZE>, &'a [u8]),
    None(NoVerify),
}

impl TlsVerifier<CipherSuite> for Verifier<'_> {
    fn set_hostname_verification(&mut self, hostname: &str) -> Result<(), TlsError> {
        match self {
            Verifier::Root(v, _) => v.set_hostname_verification(hostname),
            Verifier::None(v) => TlsVerifier::<CipherSuite>::set_hostname_verification(v, hostname),
        }
    }

    fn verify_certificate(
        &mut self,
        transcript: &<CipherSuite as embedded_tls::TlsCipherSuite>::Hash,
        mut cert: embedded_tls::CertificateRef,
    ) -> Result<(), TlsError> {
        match self {
            Verifier::Root(v, root) => {
                // The path ends at the first certificate the root issued; what follows (a
                // cross-signed root, its issuer) would make embedded-tls check it against our
                // root, and fail.
                if let Some(root_subject) = names(root).map(|n| n.subject) {
                    let issued_by_root = cert.entries.iter().position(|e| {
                        matches!(e, embedded_tls::CertificateEntryRef::X509(der)
                            if names(der).is_some_and(|n| n.issuer == root_subject))
                    });
                    if let Some(last) = issued_by_root {
                        cert.entries.truncate(last + 1);
                    }
                }
                // embedded-tls 0.19 checks signatures along the chain but not that the issuers
                // are CAs: without this, any end-entity certificate under the root could sign a
                // certificate for any name.
                let issuers = cert.entries.get(1..).unwrap_or(&[]);
                for entry in issuers {
                    match entry {
                        embedded_tls::CertificateEntryRef::X509(der) if is_ca(der) => {}
                        _ => {
                            warn!("tls: an issuer in the chain is not a CA");
                            return Err(TlsError::InvalidCertificate);
                        }
                    }
                }
                v.verify_certificate(transcript, cert)
            }
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
            Verifier::Root(v, _) => v.verify_signature(verify),
            Verifier::None(v) => TlsVerifier::<CipherSuite>::verify_signature(v, verify),
        }
    }
}

/// One DER TLV: `(tag, contents, rest)`. `None` for anything malformed or longer than the input.
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |a, &b| (a << 8) | usize::from(b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// An X.509 certificate's issuer and subject names (DER contents, compared byte for byte).
struct Names<'a> {
    issuer: &'a [u8],
    subject: &'a [u8],
}

/// The names of an X.509 certificate (DER); `None` if it is malformed.
fn names(cert: &[u8]) -> Option<Names<'_>> {
    const SEQUENCE: u8 = 0x30;
    const VERSION: u8 = 0xa0; // [0] EXPLICIT in TBSCertificate
    let (SEQUENCE, cert, _) = tlv(cert)? else {
        return None;
    };
    let (SEQUENCE, tbs, _) = tlv(cert)? else {
        return None;
    };
    let (tag, _, mut rest) = tlv(tbs)?;
    if tag == VERSION {
        (_, _, rest) = tlv(rest)?; // serialNumber
    }
    let (_, _, rest) = tlv(rest)?; // signature algorithm
    let (SEQUENCE, issuer, rest) = tlv(rest)? else {
        return None;
    };
    let (_, _, rest) = tlv(rest)?; // validity
    let (SEQUENCE, subject, _) = tlv(rest)? else {
        return None;
    };
    Some(Names { issuer, subject })
}

/// Whether an X.509 certificate (DER) carries basicConstraints with `cA` TRUE (RFC 5280
/// 4.2.1.9). Malformed input is not a CA.
fn is_ca(cert: &[u8]) -> bool {
    const SEQUENCE: u8 = 0x30;
    const EXTENSIONS: u8 = 0xa3; // [3] EXPLICIT in TBSCertificate
    const OID: u8 = 0x06;
    const BOOLEAN: u8 = 0x01;
    const OCTET_STRING: u8 = 0x04;
    const BASIC_CONSTRAINTS: &[u8] = &[0x55, 0x1d, 0x13]; // 2.5.29.19
    let Some((SEQUENCE, cert, _)) = tlv(cert) else {
        return false;
    };
    let Some((SEQUENCE, mut tbs, _)) = tlv(cert) else {
        return false;
    };
    while let Some((tag, contents, rest)) = tlv(tbs) {
        tbs = rest;
        if tag != EXTENSIONS {
            continue;
        }
        let Some((SEQUENCE, mut exts, _)) = tlv(contents) else {
            return false;
        };
        while let Some((SEQUENCE, ext, rest)) = tlv(exts) {
            exts = rest;
            let Some((OID, oid, mut ext)) = tlv(ext) else {
                return false;
            };
            if oid != BASIC_CONSTRAINTS {
                continue;
            }
            if let Some((BOOLEAN, _, rest)) = tlv(ext) {
                ext = rest; // `critical`
            }
            let Some((OCTET_STRING, value, _)) = tlv(ext) else {
                return false;
            };
            let Some((SEQUENCE, bc, _)) = tlv(value) else {
                return false;
            };
            return matches!(tlv(bc), Some((BOOLEAN, [v], _)) if *v != 0);
        }
        return false;
    }
    false
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
        Verification::Root(der) => Verifier::Root(CertVerifier::new(Certificate::X509(der)), der),
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

#[cfg(test)]
mod tests {
    use super::{is_ca, names};

    const ROOT: &[u8] = include_bytes!("../tests/data/rsa/root.der");

    #[test]
    fn a_root_is_a_ca_and_no_prefix_of_it_is() {
        assert!(is_ca(ROOT));
        for cut in 0..ROOT.len() {
            assert!(!is_ca(&ROOT[..cut]), "prefix {cut}");
        }
    }

    #[test]
    fn a_roots_names_are_its_own_and_prefixes_have_none() {
        let n = names(ROOT).unwrap();
        assert_eq!(n.issuer, n.subject);
        // "CN=ssm-session test RSA root" (tests/data/rsa/gen.sh).
        assert!(n
            .subject
            .windows(24)
            .any(|w| w == b"ssm-session test RSA roo"));
        for cut in 0..ROOT.len() {
            if let Some(n) = names(&ROOT[..cut]) {
                panic!("prefix {cut} has names {:?}", n.subject);
            }
        }
    }

    #[test]
    fn garbage_is_not_a_ca() {
        for b in [
            &[][..],
            &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff],
            &[0x30, 0x80],
            &[0xa3; 64],
        ] {
            assert!(!is_ca(b));
        }
    }
}
