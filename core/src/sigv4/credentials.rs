//! [`OwnedCredentials`]: AWS credentials in inline storage, wiped on drop.

use core::fmt;

use zeroize::Zeroize;

use super::{Credentials, Error};

/// Bytes of inline text, zeroized on drop; only visible ASCII is ever stored.
struct Secret<const N: usize> {
    bytes: [u8; N],
    len: usize,
}

impl<const N: usize> Secret<N> {
    fn new(s: &str) -> Result<Self, Error> {
        if !s.bytes().all(|c| c.is_ascii_graphic()) {
            return Err(Error::BadInput);
        }
        let mut out = Secret {
            bytes: [0; N],
            len: s.len(),
        };
        out.bytes
            .get_mut(..s.len())
            .ok_or(Error::BadInput)?
            .copy_from_slice(s.as_bytes());
        Ok(out)
    }

    fn as_str(&self) -> &str {
        // Only ASCII was copied in; the fallback keeps the no-panic promise.
        core::str::from_utf8(&self.bytes[..self.len]).unwrap_or("")
    }
}

impl<const N: usize> Drop for Secret<N> {
    fn drop(&mut self) {
        self.bytes.zeroize();
        self.len.zeroize();
    }
}

/// AWS credentials held in inline storage (no allocation), for a device that keeps them for the
/// life of a session. The secret key and the session token are zeroized on drop (a Rust move
/// leaves the old bytes behind: keep it where it was made, e.g. a `static`); `Debug` shows only
/// the access key id.
///
/// Capacities: `SECRET` bytes for the secret access key (AWS's are 40 characters), `TOKEN` for
/// the session token of temporary credentials (STS tokens run to about 1–2 KB). Access key ids
/// are at most 128 characters (IAM's limit).
pub struct OwnedCredentials<const SECRET: usize = 128, const TOKEN: usize = 2048> {
    access_key_id: Secret<128>,
    secret_access_key: Secret<SECRET>,
    session_token: Option<Secret<TOKEN>>,
}

impl<const SECRET: usize, const TOKEN: usize> OwnedCredentials<SECRET, TOKEN> {
    /// Copies the credentials in.
    ///
    /// # Errors
    /// [`Error::BadInput`] if the access key id is empty, or a value exceeds its capacity or
    /// holds characters outside visible ASCII (nothing a header could carry).
    pub fn new(
        access_key_id: &str,
        secret_access_key: &str,
        session_token: Option<&str>,
    ) -> Result<Self, Error> {
        if access_key_id.is_empty() {
            return Err(Error::BadInput);
        }
        Ok(OwnedCredentials {
            access_key_id: Secret::new(access_key_id)?,
            secret_access_key: Secret::new(secret_access_key)?,
            session_token: session_token.map(Secret::new).transpose()?,
        })
    }

    /// Borrows them for signing.
    pub fn as_credentials(&self) -> Credentials<'_> {
        Credentials {
            access_key_id: self.access_key_id.as_str(),
            secret_access_key: self.secret_access_key.as_str(),
            session_token: self.session_token.as_ref().map(Secret::as_str),
        }
    }

    /// The access key id (not secret).
    pub fn access_key_id(&self) -> &str {
        self.access_key_id.as_str()
    }

    /// Overwrites the secret key and token with zeros now (dropping does it too); the
    /// credentials are unusable afterwards.
    pub fn wipe(&mut self) {
        self.secret_access_key.bytes.zeroize();
        self.secret_access_key.len = 0;
        if let Some(t) = self.session_token.as_mut() {
            t.bytes.zeroize();
            t.len = 0;
        }
    }
}

impl<const SECRET: usize, const TOKEN: usize> fmt::Debug for OwnedCredentials<SECRET, TOKEN> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.as_credentials(), f)
    }
}

#[cfg(feature = "defmt")]
impl<const SECRET: usize, const TOKEN: usize> defmt::Format for OwnedCredentials<SECRET, TOKEN> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(
            f,
            "Credentials {{ access_key_id: {=str}, .. }}",
            self.access_key_id()
        );
    }
}

#[cfg(test)]
mod tests {
    use std::format;

    use super::*;

    #[test]
    fn owned_credentials_redact_and_wipe() {
        let mut c =
            OwnedCredentials::<64, 64>::new("AKIDEXAMPLE", "SECRETKEY", Some("TOKEN123")).unwrap();
        let d = format!("{c:?}");
        assert!(d.contains("AKIDEXAMPLE"));
        assert!(!d.contains("SECRETKEY") && !d.contains("TOKEN123"), "{d}");
        assert_eq!(c.as_credentials().secret_access_key, "SECRETKEY");
        assert_eq!(c.as_credentials().session_token, Some("TOKEN123"));
        c.wipe();
        assert!(c.secret_access_key.bytes.iter().all(|b| *b == 0));
        assert!(c
            .session_token
            .as_ref()
            .is_some_and(|t| t.bytes.iter().all(|b| *b == 0)));
        assert_eq!(c.as_credentials().secret_access_key, "");
        for bad in [("", "s", None), ("a", "s\n", None), ("a", "s", Some("t t"))] {
            assert_eq!(
                OwnedCredentials::<64, 64>::new(bad.0, bad.1, bad.2).unwrap_err(),
                Error::BadInput
            );
        }
        assert!(OwnedCredentials::<4, 4>::new("a", "12345", None).is_err());
        assert!(OwnedCredentials::<4, 4>::new("a", "1234", Some("12345")).is_err());
    }
}
