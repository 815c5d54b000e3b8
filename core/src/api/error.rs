//! AWS JSON error answers: `{"__type": "...", "message": "..."}` into a typed [`ServiceError`].

use core::fmt;

use crate::payload::json::{document, Members, Value};

/// What the service said went wrong, by `__type` (the part after any `#` namespace and before
/// any `:` suffix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ServiceErrorKind {
    /// `ExpiredTokenException`: the credentials' session token expired; get new credentials.
    ExpiredToken,
    /// `InvalidSignatureException` (often a clock off by more than 5 minutes).
    InvalidSignature,
    /// `SignatureDoesNotMatch`: wrong secret key, or a request changed after signing.
    SignatureDoesNotMatch,
    /// `UnrecognizedClientException` / `InvalidClientTokenId`: unknown access key or token.
    UnrecognizedClient,
    /// `AccessDeniedException`: the credentials may not do this.
    AccessDenied,
    /// `ThrottlingException` / `TooManyUpdates`: slow down and retry.
    Throttling,
    /// `RequestTimeTooSkewed`, `RequestExpired`, `RequestInTheFuture`, `AuthFailure`
    /// with a skewed clock: the signing time is too far from the service's.
    ClockSkew,
    /// `DoesNotExistException`: no such session (or target).
    DoesNotExist,
    /// `TargetNotConnected`: the agent on the target is not connected.
    TargetNotConnected,
    /// `InvalidDocument` / `InvalidDocumentVersion` / `InvalidParameters`.
    InvalidDocument,
    /// `ValidationException` / `SerializationException`: the request was malformed.
    Validation,
    /// `InternalServerError` (or any 5xx without a known type): retry later.
    InternalServer,
    /// Anything else.
    Other,
}

impl ServiceErrorKind {
    /// The kind for an error type name.
    pub fn from_type(type_name: &str) -> Self {
        let name = type_name.rsplit('#').next().unwrap_or(type_name);
        let name = name.split(':').next().unwrap_or(name).trim();
        match name {
            "ExpiredTokenException" | "ExpiredToken" => Self::ExpiredToken,
            "InvalidSignatureException" => Self::InvalidSignature,
            "SignatureDoesNotMatch" => Self::SignatureDoesNotMatch,
            "UnrecognizedClientException" | "InvalidClientTokenId" => Self::UnrecognizedClient,
            "AccessDeniedException" | "AccessDenied" => Self::AccessDenied,
            "ThrottlingException" | "Throttling" | "TooManyUpdates" => Self::Throttling,
            "RequestTimeTooSkewed" | "RequestExpired" | "RequestInTheFuture" => Self::ClockSkew,
            "DoesNotExistException" => Self::DoesNotExist,
            "TargetNotConnected" => Self::TargetNotConnected,
            "InvalidDocument" | "InvalidDocumentVersion" | "InvalidParameters" => {
                Self::InvalidDocument
            }
            "ValidationException" | "SerializationException" => Self::Validation,
            "InternalServerError" | "InternalFailure" | "ServiceUnavailable" => {
                Self::InternalServer
            }
            _ => Self::Other,
        }
    }

    /// A static description, lower case.
    pub const fn as_str(&self) -> &'static str {
        match self {
            Self::ExpiredToken => "the credentials' session token has expired",
            Self::InvalidSignature => "the service refused the request signature",
            Self::SignatureDoesNotMatch => "the request signature does not match",
            Self::UnrecognizedClient => "the access key or session token is not recognised",
            Self::AccessDenied => "access denied",
            Self::Throttling => "throttled by the service",
            Self::ClockSkew => "the signing time is too far from the service's clock",
            Self::DoesNotExist => "the session or target does not exist",
            Self::TargetNotConnected => "the target's agent is not connected",
            Self::InvalidDocument => "the session document or its parameters are invalid",
            Self::Validation => "the service refused the request as malformed",
            Self::InternalServer => "the service failed internally",
            Self::Other => "the service refused the request",
        }
    }
}

/// Signing time and the service's clock may differ this much before a refused signature is
/// put down to the clock: AWS accepts 5 minutes; the AWS SDKs correct from 4.
pub const SKEW_THRESHOLD_SECS: u64 = 240;

/// An error answer of the SSM API. Small and `Copy`; it keeps none of the service's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ServiceError {
    /// The HTTP status.
    pub status: u16,
    /// The error type.
    pub kind: ServiceErrorKind,
    /// The message says the signature expired or is not yet current (how SigV4 reports a
    /// skewed clock under `InvalidSignatureException`).
    pub expired_signature: bool,
}

impl ServiceError {
    /// Parses an error answer (any status but 2xx). A body that is not AWS JSON still gives an
    /// error, by status.
    pub fn parse(status: u16, body: &[u8]) -> Self {
        let mut kind = None;
        let mut expired_signature = false;
        if let Ok(obj) = document(body) {
            for m in Members::new(obj) {
                let Ok((key, Value::Str(value), _)) = m else {
                    continue;
                };
                if key.eq_str("__type") || key.eq_str("code") || key.eq_str("Code") {
                    let mut buf = [0u8; 96];
                    if let Ok(t) = value.unescape(&mut buf) {
                        kind.get_or_insert(ServiceErrorKind::from_type(t));
                    }
                } else if key.eq_str("message") || key.eq_str("Message") {
                    expired_signature = mentions_expiry(value.chars());
                }
            }
        }
        let kind = kind.unwrap_or(if status >= 500 {
            ServiceErrorKind::InternalServer
        } else {
            ServiceErrorKind::Other
        });
        ServiceError {
            status,
            kind,
            expired_signature,
        }
    }

    /// Whether the refusal is the signing clock's fault: then correct the clock from the
    /// answer's `Date` and retry once. `signed_at` is the time the request was signed with,
    /// `server_date` the answer's `Date` (Unix seconds).
    pub fn is_clock_skew(&self, signed_at: u64, server_date: Option<u64>) -> bool {
        let far = server_date.is_some_and(|d| d.abs_diff(signed_at) > SKEW_THRESHOLD_SECS);
        match self.kind {
            ServiceErrorKind::ClockSkew => true,
            ServiceErrorKind::InvalidSignature | ServiceErrorKind::SignatureDoesNotMatch => {
                self.expired_signature || far
            }
            // `AuthFailure`-like refusals with a clock far off.
            ServiceErrorKind::Other | ServiceErrorKind::UnrecognizedClient => {
                far && self.status == 403
            }
            _ => false,
        }
    }
}

/// `Signature expired: … is now earlier than …` / `Signature not yet current: …`, in any case.
fn mentions_expiry(chars: impl Iterator<Item = char>) -> bool {
    const NEEDLES: [&[u8]; 2] = [b"signature expired", b"signature not yet current"];
    // Matched length per needle. Their first letter occurs nowhere else in them, so on a
    // mismatch the match restarts at this character: exact without a window.
    let mut at = [0usize; 2];
    for c in chars {
        let b = if c.is_ascii() {
            c.to_ascii_lowercase() as u8
        } else {
            0
        };
        for (needle, at) in NEEDLES.iter().zip(at.iter_mut()) {
            if needle.get(*at) == Some(&b) {
                *at += 1;
            } else {
                *at = usize::from(needle[0] == b);
            }
            if *at == needle.len() {
                return true;
            }
        }
    }
    false
}

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (http {})", self.kind.as_str(), self.status)
    }
}

impl core::error::Error for ServiceError {}
