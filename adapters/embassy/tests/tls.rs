//! embedded-tls with this crate's verifier against a rustls server on loopback: a chain from the
//! right root and name is accepted; a wrong root or a wrong name is rejected; the dangerous
//! option accepts anything.
#![cfg(feature = "tls")]

mod common;

use core::net::SocketAddr;
use std::sync::Arc;

use embedded_io_adapters::tokio_1::FromTokio;
use embedded_io_async::{Read, Write};
use rand_core::OsRng;
#[cfg(feature = "tls-rsa")]
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use ssm_embassy::tls::{self, Options, Verification};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

struct Pki {
    ca_der: Vec<u8>,
    server: Arc<rustls::ServerConfig>,
}

/// A throwaway ECDSA P-256 root and a leaf for `localhost` signed by it.
fn pki() -> Pki {
    let (ca_der, server) = common::pki();
    Pki { ca_der, server }
}

/// A TLS echo server for one connection.
async fn echo_server(config: Arc<rustls::ServerConfig>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let Ok(mut tls) = acceptor.accept(tcp).await else {
            return;
        };
        let mut buf = [0u8; 1024];
        loop {
            match tls.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if tls.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                    let _ = tls.flush().await;
                }
            }
        }
    });
    addr
}

/// The RSA-2048 chain of `tests/data/rsa` (root -> intermediate -> leaf), AWS's shape.
#[cfg(feature = "tls-rsa")]
fn rsa_pki() -> Pki {
    use rustls_pki_types::pem::PemObject;
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/rsa/");
    let read = |f: &str| std::fs::read(format!("{dir}{f}")).unwrap();
    let chain = vec![
        CertificateDer::from_pem_slice(&read("leaf.pem")).unwrap(),
        CertificateDer::from_pem_slice(&read("int.pem")).unwrap(),
    ];
    let key = PrivateKeyDer::from_pem_slice(&read("leaf.pk8.pem")).unwrap();
    let server = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    Pki {
        ca_der: read("root.der"),
        server: Arc::new(server),
    }
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
    let addr = echo_server(server.server.clone()).await;
    let tcp = FromTokio::new(TcpStream::connect(addr).await.unwrap());
    let mut rx = vec![0u8; 16640];
    let mut tx = vec![0u8; 4096];
    let options = Options {
        server_name: name,
        verification,
    };
    let mut conn = tls::connect(tcp, &mut rx, &mut tx, options, OsRng).await?;
    conn.write_all(b"ping over tls").await?;
    conn.flush().await?;
    let mut got = [0u8; 13];
    conn.read_exact(&mut got)
        .await
        .map_err(|_| tls::Error::IoError)?;
    assert_eq!(&got, b"ping over tls");
    Ok(())
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
    let forged_key = KeyPair::generate().unwrap();
    let forged = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&forged_key, &other)
        .unwrap();
    let server = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![
            rustls_pki_types::CertificateDer::from(forged.der().to_vec()),
            rustls_pki_types::CertificateDer::from(other.der().to_vec()),
        ],
        rustls_pki_types::PrivateKeyDer::Pkcs8(rustls_pki_types::PrivatePkcs8KeyDer::from(
            forged_key.serialize_der(),
        )),
    )
    .unwrap();
    let pki = Pki {
        ca_der: root.der().to_vec(),
        server: Arc::new(server),
    };
    let r = attempt(&pki, "localhost", Verification::Root(&pki.ca_der)).await;
    assert!(matches!(r, Err(tls::Error::InvalidCertificate)), "{r:?}");
}
