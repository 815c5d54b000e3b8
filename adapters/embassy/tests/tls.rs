//! embedded-tls with this crate's verifier against a rustls server on loopback: a chain from the
//! right root and name is accepted; a wrong root or a wrong name is rejected; the dangerous
//! option accepts anything; a server that speaks only TLS 1.2 is a clear error, not a hang.
#![cfg(feature = "tls")]

mod common;

use std::sync::Arc;

use embedded_io_adapters::tokio_1::FromTokio;
use rand_core::OsRng;
use ssm_embassy::tls::{self, Options, Verification};
use tokio::net::TcpStream;

struct Pki {
    ca_der: Vec<u8>,
    server: Arc<rustls::ServerConfig>,
}

/// A throwaway ECDSA P-256 root and a leaf for `localhost` signed by it.
fn pki() -> Pki {
    let (ca_der, server) = common::pki();
    Pki { ca_der, server }
}

/// The RSA-2048 chain of `tests/data/rsa` (root -> intermediate -> leaf), AWS's shape.
#[cfg(feature = "tls-rsa")]
fn rsa_pki() -> Pki {
    let (ca_der, server) = common::rsa_pki();
    Pki { ca_der, server }
}

#[cfg(feature = "tls-rsa")]
#[tokio::test]
async fn rsa_chain_with_intermediate_is_accepted() {
    let pki = rsa_pki();
    attempt(&pki, "localhost", Verification::Root(&pki.ca_der))
        .await
        .unwrap();
}

#[cfg(feature = "tls-rsa")]
#[tokio::test]
async fn rsa_chain_under_another_root_is_rejected() {
    let pki = rsa_pki();
    let other = pki_root_only();
    let r = attempt(&pki, "localhost", Verification::Root(&other)).await;
    assert!(r.is_err(), "{r:?}");
    let r = attempt(&pki, "example.com", Verification::Root(&pki.ca_der)).await;
    assert!(matches!(r, Err(tls::Error::InvalidCertificate)), "{r:?}");
}

async fn attempt(
    server: &Pki,
    name: &str,
    verification: Verification<'_>,
) -> Result<(), tls::Error> {
    let addr = common::echo_server(server.server.clone()).await;
    let tcp = FromTokio::new(TcpStream::connect(addr).await.unwrap());
    let options = Options {
        server_name: name,
        verification,
    };
    common::tls_echo(tcp, options, OsRng).await
}

/// embedded-tls speaks TLS 1.3 only. A server that offers only TLS 1.2 answers the ClientHello
/// with a fatal `protocol_version` alert: the device gets that as its error at once.
#[tokio::test]
async fn tls12_only_server_is_a_clear_error_not_a_hang() {
    let (ca_der, server) = common::pki_for(&[&rustls::version::TLS12]);
    let pki = Pki { ca_der, server };
    let r = tokio::time::timeout(
        core::time::Duration::from_secs(20),
        attempt(&pki, "localhost", Verification::Root(&pki.ca_der)),
    )
    .await
    .expect("the handshake ends instead of hanging");
    assert!(
        matches!(
            r,
            Err(tls::Error::HandshakeAborted(
                _,
                embedded_tls::alert::AlertDescription::ProtocolVersion
            ))
        ),
        "{r:?}"
    );
    // The same server with TLS 1.3 too is reached.
    let (ca_der, server) = common::pki_for(&[&rustls::version::TLS12, &rustls::version::TLS13]);
    let pki = Pki { ca_der, server };
    attempt(&pki, "localhost", Verification::Root(&pki.ca_der))
        .await
        .unwrap();
}

#[tokio::test]
async fn right_root_and_name_are_accepted() {
    let pki = pki();
    attempt(&pki, "localhost", Verification::Root(&pki.ca_der))
        .await
        .unwrap();
}

#[tokio::test]
async fn wrong_root_is_rejected() {
    let pki = pki();
    let other = pki_root_only();
    let r = attempt(&pki, "localhost", Verification::Root(&other)).await;
    assert!(
        matches!(
            r,
            Err(tls::Error::InvalidSignature
                | tls::Error::InvalidCertificate
                | tls::Error::DecodeError)
        ),
        "{r:?}"
    );
}

#[tokio::test]
async fn wrong_name_is_rejected() {
    let pki = pki();
    let r = attempt(
        &pki,
        "ssmmessages.example.com",
        Verification::Root(&pki.ca_der),
    )
    .await;
    assert!(matches!(r, Err(tls::Error::InvalidCertificate)), "{r:?}");
}

#[tokio::test]
async fn dangerous_option_accepts_an_unknown_root() {
    let pki = pki();
    attempt(
        &pki,
        "ssmmessages.example.com",
        Verification::DangerousNoVerification,
    )
    .await
    .unwrap();
}

fn pki_root_only() -> Vec<u8> {
    common::pki().0
}

/// A certificate that is not a CA (an ordinary leaf the root issued to someone else) must not
/// be able to issue a certificate for our host. embedded-tls 0.19 does not check basic
/// constraints; this crate's verifier does.
#[tokio::test]
async fn chain_through_a_non_ca_certificate_is_rejected() {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let root = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    // An end-entity certificate for someone else's name (is_ca defaults to NoCa).
    let other = CertificateParams::new(vec!["attacker.example".to_string()]).unwrap();
    let other = CertifiedIssuer::signed_by(other, KeyPair::generate().unwrap(), &root).unwrap();
    // The forgery: our host name, signed by that end-entity key.
    let (forged, forged_key) = common::localhost_leaf(&other);
    let server = common::tls13_server(vec![forged, other.der().clone()], forged_key);
    let pki = Pki {
        ca_der: root.der().to_vec(),
        server,
    };
    let r = attempt(&pki, "localhost", Verification::Root(&pki.ca_der)).await;
    assert!(matches!(r, Err(tls::Error::InvalidCertificate)), "{r:?}");
}

/// Servers append more than the path to the root: ACM chains send the leaf, the intermediate,
/// then Amazon Root CA 1 cross-signed by Starfield, then Starfield's root. With Amazon Root CA 1
/// as the trust anchor, the path ends at the intermediate; the rest must not break it.
#[tokio::test]
async fn chain_with_a_cross_signed_root_appended_is_accepted() {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, Issuer, KeyPair,
    };
    let ca = |name: &str| {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        p
    };
    // The trust anchor, and another root that cross-signs it.
    let (anchor, anchor_key) = (ca("anchor root"), KeyPair::generate().unwrap());
    let anchor_der = anchor.self_signed(&anchor_key).unwrap().der().to_vec();
    let other =
        CertifiedIssuer::self_signed(ca("other root"), KeyPair::generate().unwrap()).unwrap();
    let cross = anchor.signed_by(&anchor_key, &other).unwrap();
    let anchor_issuer = Issuer::from_params(&anchor, &anchor_key);
    let int = CertifiedIssuer::signed_by(
        ca("intermediate"),
        KeyPair::generate().unwrap(),
        &anchor_issuer,
    )
    .unwrap();
    let (leaf, leaf_key) = common::localhost_leaf(&int);
    let server = common::tls13_server(
        vec![
            leaf,
            int.der().clone(),
            cross.der().clone(),
            other.der().clone(),
        ],
        leaf_key,
    );
    let pki = Pki {
        ca_der: anchor_der,
        server,
    };
    attempt(&pki, "localhost", Verification::Root(&pki.ca_der))
        .await
        .unwrap();
    // Trusting the cross-signer instead is a valid path too (through the cross-signed copy).
    attempt(&pki, "localhost", Verification::Root(other.der()))
        .await
        .unwrap();
    // An unrelated root is not.
    let r = attempt(&pki, "localhost", Verification::Root(&pki_root_only())).await;
    assert!(r.is_err(), "{r:?}");
}
