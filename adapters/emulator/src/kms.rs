//! A local KMS: the two calls a Session Manager client and agent make
//! (`TrentService.GenerateDataKey`, `TrentService.Decrypt`, AWS JSON 1.1), strict where AWS is
//! strict: the encryption context is bound into the ciphertext blob, so a Decrypt with another
//! context (a different session, target or challenge) fails with `InvalidCiphertextException`,
//! as in AWS; an unknown key is `NotFoundException`.
//!
//! The blob is this emulator's own format (AWS's is opaque too): a magic, the key id, a nonce,
//! and the data key sealed with AES-256-GCM under a master key drawn at start, the key id and the
//! canonical context (sorted `key=value` pairs) as additional data.

use std::collections::BTreeMap;

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use serde_json::{json, Value};

const MAGIC: &[u8] = b"SSMEMUKMS1";
/// The largest data key GenerateDataKey returns (AWS: `NumberOfBytes` 1..=1024).
const MAX_KEY_BYTES: u64 = 1024;

/// A KMS error as AWS names it (`__type`) and its message.
pub(crate) type KmsError = (&'static str, String);

/// One customer master key, known by its id, its ARN and an optional alias.
pub(crate) struct LocalKms {
    key_id: String,
    arn: String,
    master: LessSafeKey,
    rng: SystemRandom,
}

impl std::fmt::Debug for LocalKms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalKms")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl LocalKms {
    /// A KMS holding one key. `key_id` may be a bare id, an ARN (`arn:aws:kms:…:key/ID`) or an
    /// alias (`alias/NAME`); requests may name it by any of the forms AWS accepts for it.
    pub(crate) fn new(key_id: &str, region: &str) -> LocalKms {
        let rng = SystemRandom::new();
        let mut master = [0u8; 32];
        rng.fill(&mut master).expect("the system RNG works");
        let bare = key_id.rsplit('/').next().unwrap_or(key_id);
        let arn = if key_id.starts_with("arn:") {
            key_id.to_string()
        } else if key_id.starts_with("alias/") {
            format!("arn:aws:kms:{region}:123456789012:{key_id}")
        } else {
            format!("arn:aws:kms:{region}:123456789012:key/{bare}")
        };
        LocalKms {
            key_id: key_id.to_string(),
            arn,
            master: LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &master).expect("32-byte key")),
            rng,
        }
    }

    /// Whether `name` names this key (id, ARN, or the last part of either).
    fn knows(&self, name: &str) -> bool {
        let last = |s: &str| s.rsplit(['/', ':']).next().unwrap_or(s).to_string();
        name == self.key_id || name == self.arn || last(name) == last(&self.key_id)
    }

    /// `GenerateDataKey`: a fresh data key in the clear and sealed under `context`.
    pub(crate) fn generate_data_key(
        &self,
        key_id: &str,
        bytes: usize,
        context: &BTreeMap<String, String>,
    ) -> Result<(Vec<u8>, Vec<u8>), KmsError> {
        if !self.knows(key_id) {
            return Err(not_found(key_id));
        }
        let mut plaintext = vec![0u8; bytes];
        self.rng
            .fill(&mut plaintext)
            .map_err(|_| ("KMSInternalException", "no randomness".to_string()))?;
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .map_err(|_| ("KMSInternalException", "no randomness".to_string()))?;
        let mut sealed = plaintext.clone();
        self.master
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(&self.arn, context)),
                &mut sealed,
            )
            .map_err(|_| ("KMSInternalException", "seal failed".to_string()))?;
        let mut blob = MAGIC.to_vec();
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&sealed);
        Ok((plaintext, blob))
    }

    /// `Decrypt`: the data key sealed in `blob`, if `context` is the one it was sealed under.
    pub(crate) fn decrypt(
        &self,
        blob: &[u8],
        context: &BTreeMap<String, String>,
    ) -> Result<Vec<u8>, KmsError> {
        let invalid = || {
            (
                "InvalidCiphertextException",
                "the ciphertext or its encryption context is not valid".to_string(),
            )
        };
        let rest = blob.strip_prefix(MAGIC).ok_or_else(invalid)?;
        if rest.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(invalid());
        }
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| invalid())?;
        let mut buf = sealed.to_vec();
        let plain = self
            .master
            .open_in_place(nonce, Aad::from(aad(&self.arn, context)), &mut buf)
            .map_err(|_| invalid())?;
        Ok(plain.to_vec())
    }

    /// Answers a `TrentService.*` call with its AWS JSON body.
    pub(crate) fn api(&self, operation: &str, body: &Value) -> Result<Value, KmsError> {
        let context = context_of(body)?;
        match operation {
            "GenerateDataKey" => {
                let key_id = body
                    .get("KeyId")
                    .and_then(Value::as_str)
                    .ok_or_else(|| validation("KeyId is required"))?;
                let bytes =
                    match (
                        body.get("NumberOfBytes").and_then(Value::as_u64),
                        body.get("KeySpec").and_then(Value::as_str),
                    ) {
                        (Some(n), None) if (1..=MAX_KEY_BYTES).contains(&n) => n as usize,
                        (None, Some("AES_256")) => 32,
                        (None, Some("AES_128")) => 16,
                        (None, None) => {
                            return Err(validation("one of NumberOfBytes and KeySpec is required"))
                        }
                        _ => return Err(validation(
                            "NumberOfBytes must be 1..=1024, KeySpec AES_128 or AES_256, not both",
                        )),
                    };
                let (plaintext, blob) = self.generate_data_key(key_id, bytes, &context)?;
                Ok(json!({
                    "CiphertextBlob": b64(&blob),
                    "Plaintext": b64(&plaintext),
                    "KeyId": self.arn,
                }))
            }
            "Decrypt" => {
                if let Some(k) = body.get("KeyId").and_then(Value::as_str) {
                    if !self.knows(k) {
                        return Err((
                            "IncorrectKeyException",
                            "the key is not the one that encrypted the ciphertext".to_string(),
                        ));
                    }
                }
                let blob = body
                    .get("CiphertextBlob")
                    .and_then(Value::as_str)
                    .ok_or_else(|| validation("CiphertextBlob is required"))?;
                let blob = unb64(blob).ok_or_else(|| validation("CiphertextBlob is not base64"))?;
                let plaintext = self.decrypt(&blob, &context)?;
                Ok(json!({
                    "Plaintext": b64(&plaintext),
                    "KeyId": self.arn,
                    "EncryptionAlgorithm": "SYMMETRIC_DEFAULT",
                }))
            }
            other => Err((
                "UnknownOperationException",
                format!("KMS operation {other:?} is not emulated"),
            )),
        }
    }
}

fn not_found(key_id: &str) -> KmsError {
    let shown: String = key_id.chars().take(128).collect();
    ("NotFoundException", format!("key '{shown}' does not exist"))
}

fn validation(message: &str) -> KmsError {
    ("ValidationException", message.to_string())
}

/// `EncryptionContext`: an object of strings (absent = empty).
fn context_of(body: &Value) -> Result<BTreeMap<String, String>, KmsError> {
    match body.get("EncryptionContext") {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| match v.as_str() {
                Some(s) => Ok((k.clone(), s.to_string())),
                None => Err(validation("EncryptionContext values must be strings")),
            })
            .collect(),
        Some(_) => Err(validation("EncryptionContext must be an object")),
    }
}

/// The additional data: the key and the context, canonical (sorted, NUL-separated).
fn aad(arn: &str, context: &BTreeMap<String, String>) -> Vec<u8> {
    let mut a = arn.as_bytes().to_vec();
    for (k, v) in context {
        a.push(0);
        a.extend_from_slice(k.as_bytes());
        a.push(b'=');
        a.extend_from_slice(v.as_bytes());
    }
    a
}

/// Base64 (standard alphabet, padded), as AWS JSON carries blobs.
pub(crate) fn b64(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
}

pub(crate) fn unb64(text: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn decrypt_needs_the_same_context_and_key() {
        let kms = LocalKms::new("alias/ssm", "eu-west-1");
        let c = ctx(&[
            ("aws:ssm:SessionId", "user-0123"),
            ("aws:ssm:TargetId", "i-0abc"),
            ("aws:ssm:RandomChallenge", "q83v"),
        ]);
        let (plain, blob) = kms.generate_data_key("alias/ssm", 64, &c).unwrap();
        assert_eq!(plain.len(), 64);
        assert_eq!(kms.decrypt(&blob, &c).unwrap(), plain);
        // Without the challenge entry (a client that did not acknowledge it) it fails.
        let mut without = c.clone();
        without.remove("aws:ssm:RandomChallenge");
        assert_eq!(
            kms.decrypt(&blob, &without).unwrap_err().0,
            "InvalidCiphertextException"
        );
        let other = ctx(&[
            ("aws:ssm:SessionId", "user-9999"),
            ("aws:ssm:TargetId", "i-0abc"),
        ]);
        assert_eq!(
            kms.decrypt(&blob, &other).unwrap_err().0,
            "InvalidCiphertextException"
        );
        // A flipped bit, a cut blob, another KMS's blob.
        let mut bad = blob.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(kms.decrypt(&bad, &c).is_err());
        assert!(kms.decrypt(&blob[..blob.len() - 17], &c).is_err());
        assert!(kms.decrypt(b"", &c).is_err());
        let stranger = LocalKms::new("alias/ssm", "eu-west-1");
        assert!(stranger.decrypt(&blob, &c).is_err());
        assert_eq!(
            kms.generate_data_key("alias/other", 64, &c).unwrap_err().0,
            "NotFoundException"
        );
    }

    #[test]
    fn json_api_round_trip_and_errors() {
        let kms = LocalKms::new("1234abcd-12ab-34cd-56ef-1234567890ab", "us-east-1");
        let arn = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
        let context = json!({"aws:ssm:SessionId": "s-1", "aws:ssm:TargetId": "i-1"});
        let g = kms
            .api(
                "GenerateDataKey",
                &json!({"KeyId": arn, "NumberOfBytes": 64, "EncryptionContext": context}),
            )
            .unwrap();
        assert_eq!(g["KeyId"], arn);
        let plain = unb64(g["Plaintext"].as_str().unwrap()).unwrap();
        assert_eq!(plain.len(), 64);
        let d = kms
            .api(
                "Decrypt",
                &json!({"CiphertextBlob": g["CiphertextBlob"], "EncryptionContext": context}),
            )
            .unwrap();
        assert_eq!(unb64(d["Plaintext"].as_str().unwrap()).unwrap(), plain);
        let e = kms
            .api("Decrypt", &json!({"CiphertextBlob": g["CiphertextBlob"]}))
            .unwrap_err();
        assert_eq!(e.0, "InvalidCiphertextException");
        for bad in [
            json!({"KeyId": arn}),
            json!({"KeyId": arn, "NumberOfBytes": 0}),
            json!({"KeyId": arn, "NumberOfBytes": 2000}),
            json!({"KeyId": arn, "NumberOfBytes": 64, "KeySpec": "AES_256"}),
            json!({"KeyId": arn, "NumberOfBytes": 64, "EncryptionContext": {"a": 1}}),
            json!({"NumberOfBytes": 64}),
        ] {
            assert_eq!(
                kms.api("GenerateDataKey", &bad).unwrap_err().0,
                "ValidationException",
                "{bad}"
            );
        }
        assert_eq!(
            kms.api("Decrypt", &json!({"CiphertextBlob": "!!"}))
                .unwrap_err()
                .0,
            "ValidationException"
        );
        assert_eq!(
            kms.api("Encrypt", &json!({})).unwrap_err().0,
            "UnknownOperationException"
        );
    }
}
