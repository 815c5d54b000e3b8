//! KMS session encryption hooks (PROTOCOL.md §6): the engine asks for a data key (client) or for
//! the client's key to be decrypted (agent); the application answers through these callbacks,
//! so the driver does not care how KMS is reached (the AWS SDK, a local KMS, a broker).

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;

use zeroize::Zeroizing;

/// What to ask KMS `GenerateDataKey` for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataKeyRequest {
    /// `KeyId`: the key the agent named (id, ARN or alias).
    pub key_id: String,
    /// `NumberOfBytes`: 64 (two AES-256 keys).
    pub number_of_bytes: usize,
    /// `EncryptionContext`, exactly: `aws:ssm:SessionId`, `aws:ssm:TargetId` and, when the
    /// agent sent a challenge, `aws:ssm:RandomChallenge`.
    pub encryption_context: Vec<(String, String)>,
}

/// KMS's answer to `GenerateDataKey`. The plaintext is wiped on drop and never shown by `Debug`.
pub struct DataKey {
    /// `Plaintext`: the data key (64 bytes).
    pub plaintext: Zeroizing<Vec<u8>>,
    /// `CiphertextBlob`: the data key sealed by KMS, sent to the agent.
    pub ciphertext_blob: Vec<u8>,
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataKey")
            .field(
                "plaintext",
                &format_args!("<redacted, {} bytes>", self.plaintext.len()),
            )
            .field(
                "ciphertext_blob",
                &format_args!("{} bytes", self.ciphertext_blob.len()),
            )
            .finish()
    }
}

/// What to ask KMS `Decrypt` for (agent role).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecryptRequest {
    /// `CiphertextBlob`: the client's sealed data key.
    pub ciphertext_blob: Vec<u8>,
    /// `EncryptionContext`: as the client had to use it (with the challenge iff it acknowledged).
    pub encryption_context: Vec<(String, String)>,
}

/// A future answering a KMS call.
pub type KmsFuture<T> = Pin<Box<dyn Future<Output = io::Result<T>> + Send>>;

/// Client role: calls KMS `GenerateDataKey`.
pub type DataKeyFn = Arc<dyn Fn(DataKeyRequest) -> KmsFuture<DataKey> + Send + Sync>;

/// Agent role: calls KMS `Decrypt`; answers the plaintext data key.
pub type DecryptFn = Arc<dyn Fn(DecryptRequest) -> KmsFuture<Zeroizing<Vec<u8>>> + Send + Sync>;

/// Client role: KMS encryption when the agent asks for it.
#[derive(Clone)]
pub struct ClientKms {
    /// The StartSession `Target` (the encryption context's `aws:ssm:TargetId`).
    pub target: String,
    /// Obtains the data key.
    pub generate_data_key: DataKeyFn,
}

impl fmt::Debug for ClientKms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientKms")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// Agent role: decrypts the client's data key.
#[derive(Clone)]
pub struct AgentKms {
    /// The session id (the context's `aws:ssm:SessionId`).
    pub session_id: String,
    /// The target (the context's `aws:ssm:TargetId`).
    pub target: String,
    /// Calls KMS `Decrypt`.
    pub decrypt: DecryptFn,
}

impl fmt::Debug for AgentKms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentKms")
            .field("session_id", &self.session_id)
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// The context as owned pairs.
pub(crate) fn context_pairs(c: &ssm_proto::kms::EncryptionContext<'_>) -> Vec<(String, String)> {
    c.entries()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A nonce start for a fresh session key: only uniqueness under the key matters, and the key is
/// new for every session, so any start is safe; it is random all the same, as the agent's is.
pub(crate) fn nonce_start() -> [u8; ssm_proto::kms::NONCE_LEN] {
    let mut n = [0u8; ssm_proto::kms::NONCE_LEN];
    if rustls::crypto::ring::default_provider()
        .secure_random
        .fill(&mut n)
        .is_err()
    {
        n[..8].copy_from_slice(&crate::random_seed().to_le_bytes());
    }
    n
}
