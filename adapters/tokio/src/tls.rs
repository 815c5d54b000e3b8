//! Client TLS: which roots to trust and whether plain `ws://` is allowed.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use crate::Error;

/// How the client verifies the data-channel server.
///
/// The default trusts the operating system's roots and the bundled webpki (Mozilla) roots, plus
/// the PEM file named by `AWS_CA_BUNDLE` if that variable is set, and refuses `ws://`.
#[derive(Clone, Debug)]
pub struct TlsOptions {
    /// Trust the operating system's certificate store (`rustls-native-certs`).
    pub native_roots: bool,
    /// Trust the Mozilla roots compiled in (`webpki-roots`).
    pub webpki_roots: bool,
    /// Also trust the certificates in this PEM file (corporate TLS interception).
    pub extra_ca_file: Option<PathBuf>,
    /// Also trust these PEM certificates (the emulator's throwaway CA, tests).
    pub extra_ca_pem: Option<Vec<u8>>,
    /// Read `AWS_CA_BUNDLE` (a PEM file) and trust its certificates too. The AWS CLI uses that
    /// file *instead of* its bundle; adding it to the roots accepts the same servers and more.
    pub aws_ca_bundle_env: bool,
    /// Dangerous: allow unencrypted `ws://` stream URLs. Meant for a local emulator only.
    pub allow_plain_ws: bool,
}

impl Default for TlsOptions {
    fn default() -> Self {
        TlsOptions {
            native_roots: true,
            webpki_roots: true,
            extra_ca_file: None,
            extra_ca_pem: None,
            aws_ca_bundle_env: true,
            allow_plain_ws: false,
        }
    }
}

impl TlsOptions {
    /// Trust only `ca_pem` (no system or webpki roots) and allow `ws://`: what a test or the
    /// local demo wants when talking to the emulator.
    pub fn emulator(ca_pem: impl Into<Vec<u8>>) -> Self {
        TlsOptions {
            native_roots: false,
            webpki_roots: false,
            extra_ca_file: None,
            extra_ca_pem: Some(ca_pem.into()),
            aws_ca_bundle_env: false,
            allow_plain_ws: true,
        }
    }

    /// Builds the rustls client configuration (ring provider, TLS 1.2 and 1.3).
    ///
    /// # Errors
    /// [`Error::Io`] when a CA file cannot be read, [`Error::Tls`] when no usable root remains or
    /// a PEM file holds no certificate.
    pub fn client_config(&self) -> Result<Arc<rustls::ClientConfig>, Error> {
        let mut roots = RootCertStore::empty();
        if self.webpki_roots {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        if self.native_roots {
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                tracing::debug!("native root store: {e}");
            }
            let (added, ignored) = roots.add_parsable_certificates(found.certs);
            tracing::debug!(added, ignored, "native roots loaded");
        }
        if let Some(pem) = &self.extra_ca_pem {
            add_pem(&mut roots, pem, "extra CA")?;
        }
        if let Some(path) = &self.extra_ca_file {
            let pem = std::fs::read(path).map_err(|e| {
                Error::Io(std::io::Error::new(
                    e.kind(),
                    format!("cannot read CA file {}: {e}", path.display()),
                ))
            })?;
            add_pem(&mut roots, &pem, &path.display().to_string())?;
        }
        if self.aws_ca_bundle_env {
            if let Some(path) = std::env::var_os("AWS_CA_BUNDLE").filter(|p| !p.is_empty()) {
                let path = PathBuf::from(path);
                let pem = std::fs::read(&path).map_err(|e| {
                    Error::Io(std::io::Error::new(
                        e.kind(),
                        format!("cannot read AWS_CA_BUNDLE {}: {e}", path.display()),
                    ))
                })?;
                add_pem(&mut roots, &pem, "AWS_CA_BUNDLE")?;
            }
        }
        if roots.is_empty() {
            return Err(Error::Tls {
                host: "-".into(),
                detail: "no trusted root certificates configured".into(),
            });
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls {
            host: "-".into(),
            detail: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(Arc::new(config))
    }
}

fn add_pem(roots: &mut RootCertStore, pem: &[u8], what: &str) -> Result<(), Error> {
    let mut n = 0usize;
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| Error::Tls {
            host: "-".into(),
            detail: format!("{what}: bad PEM: {e}"),
        })?;
        roots.add(cert).map_err(|e| Error::Tls {
            host: "-".into(),
            detail: format!("{what}: {e}"),
        })?;
        n += 1;
    }
    if n == 0 {
        return Err(Error::Tls {
            host: "-".into(),
            detail: format!("{what}: no certificate in PEM"),
        });
    }
    Ok(())
}
