//! A throwaway CA and a server certificate for `localhost` / `127.0.0.1` / `::1`, made at start.

use std::io;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

/// The CA's PEM (for clients to trust) and the server's rustls configuration.
pub(crate) struct Certs {
    pub(crate) ca_pem: String,
    pub(crate) server: Arc<rustls::ServerConfig>,
}

fn err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("emulator certificate: {e}"))
}

pub(crate) fn generate() -> io::Result<Certs> {
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "ssm-session emulator throwaway CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().map_err(err)?).map_err(err)?;

    let names = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
    let mut leaf = CertificateParams::new(names).map_err(err)?;
    leaf.distinguished_name
        .push(DnType::CommonName, "ssm-session emulator");
    let key = KeyPair::generate().map_err(err)?;
    let cert = leaf.signed_by(&key, &ca).map_err(err)?;

    let chain = vec![cert.der().clone()];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let server = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(err)?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .map_err(err)?;
    Ok(Certs {
        ca_pem: ca.pem(),
        server: Arc::new(server),
    })
}
