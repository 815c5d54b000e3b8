//! The AWS side of a session: credentials, region and profile resolved by `aws-config` (as the
//! AWS CLI does: environment, shared config and credentials files, SSO, `credential_process`,
//! `role_arn` + `source_profile`, container and instance metadata), the three SSM calls through
//! `aws-sdk-ssm`, and the SigV4 signature of the data-channel upgrade (`aws-sigv4`, PROTOCOL.md
//! §6b).
//!
//! Every answer becomes a [`Grant`] under one endpoint rule ([`endpoint_policy`]): a stream URL
//! off AWS's `ssmmessages` hosts is accepted only from a loopback API endpoint (the emulator).

use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_config::BehaviorVersion;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use aws_sdk_ssm::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use ssm_proto::model::{Endpoints, StartSessionResponse, StreamUrl};
use ssm_tokio::{Grant, UpgradeHeadersFn};

use crate::exit::{Failure, Kind, Result};

/// Longest message taken from the SDK or a credential provider: one readable line.
const MAX_DETAIL: usize = 300;
/// Bound on one API call, retries included (the SDK has no overall default).
const OPERATION_TIMEOUT: Duration = Duration::from_secs(30);
/// TCP connect bound per attempt.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The SigV4 service name of the data channel (PROTOCOL.md §6b).
const DATA_CHANNEL_SERVICE: &str = "ssmmessages";

/// Where a session's AWS settings come from; `None` leaves each to the SDK's own resolution.
#[derive(Debug, Default, Clone)]
pub struct AwsOptions {
    /// `--region` / the plugin's argv[2]; else `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile.
    pub region: Option<String>,
    /// `--profile` / argv[4]; else `AWS_PROFILE`, else `default`.
    pub profile: Option<String>,
    /// `--endpoint-url` / argv[6]; else `AWS_ENDPOINT_URL_SSM`, `AWS_ENDPOINT_URL`, the profile's
    /// `endpoint_url`, else the region's public endpoint.
    pub endpoint_url: Option<String>,
    /// Fixed credentials instead of the chain (the demo's emulator).
    pub credentials: Option<Credentials>,
    /// Sign the WebSocket upgrade (default on; `--no-sign-upgrade` turns it off).
    pub sign_upgrade: bool,
}

/// The endpoint rule, in one place: a loopback API endpoint (`localhost`, `127.0.0.0/8`, `::1`) may
/// hand out stream URLs to any host; any other endpoint only AWS's `wss://ssmmessages...` URLs.
pub fn endpoint_policy(endpoint: &str) -> Endpoints {
    if is_loopback_url(endpoint) {
        Endpoints::DangerousAnyHost
    } else {
        Endpoints::Aws
    }
}

/// Whether an `http(s)://` API endpoint names this machine (`http::Uri`: the endpoint is not a
/// stream URL, so the core's `StreamUrl` parser does not apply).
pub fn is_loopback_url(endpoint: &str) -> bool {
    endpoint
        .parse::<http::Uri>()
        .ok()
        .filter(|u| matches!(u.scheme_str(), Some("http" | "https")))
        .and_then(|u| u.host().map(str::to_owned))
        .is_some_and(|h| is_loopback_host(&h))
}

/// Whether `s` is an absolute `http://` or `https://` URL.
pub fn is_http_url(s: &str) -> bool {
    s.parse::<http::Uri>()
        .is_ok_and(|u| matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some())
}

/// Whether a grant may use unencrypted `ws://`: only when its URL was accepted off AWS (so the
/// API endpoint was loopback) and names this machine too.
pub fn allows_plain_ws(grant: &Grant) -> bool {
    let url = grant.stream_url();
    !url.is_aws() && is_loopback_host(url.host())
}

/// `localhost` or a loopback IP literal (IPv6 with or without brackets).
pub fn is_loopback_host(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Checks a StartSession/ResumeSession answer's three values under `policy`.
///
/// # Errors
/// [`Kind::Usage`] with the model's reason (never the URL or the token).
pub fn grant_of(
    session_id: &str,
    stream_url: &str,
    token: &str,
    policy: Endpoints,
) -> Result<Grant> {
    StartSessionResponse::new(session_id, stream_url, token, policy)
        .and_then(|r| Grant::from_borrowed(&r))
        .map_err(|e| Failure::new(Kind::Usage, format!("unusable session response: {e}")))
}

/// The selected profile, for messages: its name and whether it signs in through SSO.
#[derive(Debug, Clone)]
struct ProfileInfo {
    name: String,
    sso: bool,
    /// The chain takes `AWS_ACCESS_KEY_ID` before any profile.
    env_keys: bool,
}

/// An SSM client and the credentials it signs with.
#[derive(Debug, Clone)]
pub struct Aws {
    ssm: aws_sdk_ssm::Client,
    credentials: SharedCredentialsProvider,
    region: String,
    profile: Arc<ProfileInfo>,
    sign_upgrade: bool,
}

/// Whether a ResumeSession answer names a live session or says it ended (empty token).
pub enum Resumed {
    /// New URL and token.
    Grant(Box<Grant>),
    /// The session ended on the service's side: the plugin exits 0.
    Ended,
}

impl Aws {
    /// Resolves region, profile, credentials and endpoint.
    ///
    /// # Errors
    /// [`Kind::Usage`] without a region; [`Kind::Tls`] when `AWS_CA_BUNDLE` is unusable.
    pub async fn load(o: AwsOptions) -> Result<Aws> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(http_client()?)
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .operation_timeout(OPERATION_TIMEOUT)
                    .connect_timeout(CONNECT_TIMEOUT)
                    .build(),
            );
        if let Some(r) = o.region.clone().filter(|r| !r.is_empty()) {
            loader = loader.region(aws_config::Region::new(r));
        }
        if let Some(p) = o.profile.clone().filter(|p| !p.is_empty()) {
            loader = loader.profile_name(p);
        }
        if let Some(e) = o.endpoint_url.clone().filter(|e| !e.is_empty()) {
            loader = loader.endpoint_url(e);
        }
        if let Some(c) = o.credentials.clone() {
            loader = loader.credentials_provider(c);
        }
        let config = loader.load().await;
        let region = config
            .region()
            .map(|r| r.as_ref().to_owned())
            .ok_or_else(|| {
                Failure::new(
                    Kind::Usage,
                    "no region: pass --region, set AWS_REGION, or give the profile a region",
                )
            })?;
        let credentials = config.credentials_provider().ok_or_else(|| {
            Failure::new(
                Kind::Internal,
                "the sdk configuration has no credentials provider",
            )
        })?;
        let profile = Arc::new(profile_info(o.profile.as_deref(), o.credentials.is_some()).await);
        Ok(Aws {
            ssm: aws_sdk_ssm::Client::new(&config),
            credentials,
            region,
            profile,
            sign_upgrade: o.sign_upgrade,
        })
    }

    /// `StartSession` with the request parameters (`Target`, `DocumentName`, `Parameters`).
    ///
    /// # Errors
    /// See [`Aws::sdk_failure`]; [`Kind::Usage`] for an answer that fails validation.
    pub async fn start_session(
        &self,
        target: &str,
        document: Option<&str>,
        parameters: Option<&serde_json::Value>,
    ) -> Result<Grant> {
        let mut call = self.ssm.start_session().target(target);
        if let Some(d) = document {
            call = call.document_name(d);
        }
        if let Some(serde_json::Value::Object(m)) = parameters {
            for (k, v) in m {
                let values: Vec<String> = match v {
                    serde_json::Value::Array(a) => a.iter().map(json_text).collect(),
                    other => vec![json_text(other)],
                };
                call = call.parameters(k, values);
            }
        }
        let endpoint = EndpointSeen::default();
        let out = call
            .customize()
            .interceptor(endpoint.clone())
            .send()
            .await
            .map_err(|e| self.sdk_failure("StartSession", e))?;
        grant_of(
            out.session_id().unwrap_or(""),
            out.stream_url().unwrap_or(""),
            out.token_value().unwrap_or(""),
            endpoint.policy(),
        )
    }

    /// `ResumeSession`: a fresh URL and token for `session_id`, checked like StartSession's.
    ///
    /// # Errors
    /// As [`Aws::start_session`].
    pub async fn resume_session(&self, session_id: &str) -> Result<Resumed> {
        let endpoint = EndpointSeen::default();
        let out = self
            .ssm
            .resume_session()
            .session_id(session_id)
            .customize()
            .interceptor(endpoint.clone())
            .send()
            .await
            .map_err(|e| self.sdk_failure("ResumeSession", e))?;
        if out.token_value().is_none_or(str::is_empty) {
            return Ok(Resumed::Ended);
        }
        let id = out.session_id().unwrap_or(session_id);
        grant_of(
            id,
            out.stream_url().unwrap_or(""),
            out.token_value().unwrap_or(""),
            endpoint.policy(),
        )
        .map(|g| Resumed::Grant(Box::new(g)))
    }

    /// `TerminateSession`.
    ///
    /// # Errors
    /// See [`Aws::sdk_failure`].
    pub async fn terminate_session(&self, session_id: &str) -> Result<()> {
        self.ssm
            .terminate_session()
            .session_id(session_id)
            .send()
            .await
            .map(drop)
            .map_err(|e| self.sdk_failure("TerminateSession", e))
    }

    /// The upgrade-signing hook for [`ssm_tokio::ConnectOptions::upgrade_headers`]: SigV4 headers
    /// (service `ssmmessages`, the URL's region, else the API's) made with fresh credentials from
    /// the chain, unless signing is off or the URL is already presigned (`X-Amz-*` parameters).
    pub fn upgrade_headers(&self) -> Option<UpgradeHeadersFn> {
        if !self.sign_upgrade {
            return None;
        }
        let this = self.clone();
        Some(Arc::new(move |url: &StreamUrl<'_>| {
            let presigned = url.query().is_some_and(|q| {
                q.split('&')
                    .any(|p| p.len() >= 6 && p[..6].eq_ignore_ascii_case("x-amz-"))
            });
            let region = url
                .region()
                .map_or_else(|| this.region.clone(), str::to_owned);
            let text = url.as_str().to_owned();
            let this = this.clone();
            Box::pin(async move {
                if presigned {
                    return Ok(Vec::new());
                }
                let creds = this
                    .credentials
                    .provide_credentials()
                    .await
                    .map_err(|e| std::io::Error::other(this.credentials_message(&e)))?;
                sign_upgrade(&text, &region, creds, SystemTime::now())
                    .map_err(std::io::Error::other)
            })
        }))
    }

    /// One line for a failed SDK call, with the exit code's kind: [`Kind::Auth`] for rejected or
    /// missing credentials (naming the profile and what to run), [`Kind::Unreachable`] for
    /// connection failures and timeouts, [`Kind::Tls`], else [`Kind::Api`].
    fn sdk_failure<E>(
        &self,
        op: &str,
        e: SdkError<E, aws_smithy_runtime_api::http::Response>,
    ) -> Failure
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        match &e {
            SdkError::ServiceError(se) => {
                let status = se.raw().status().as_u16();
                let err = se.err();
                let code = err.code().unwrap_or("");
                let message = err.message().unwrap_or("");
                let detail = match (code.is_empty(), message.is_empty()) {
                    (false, false) => format!("{code}: {message}"),
                    (false, true) => code.to_owned(),
                    (true, false) => message.to_owned(),
                    (true, true) => "no details".to_owned(),
                };
                let detail = cut(&detail);
                if is_auth_error(status, code) {
                    Failure::new(
                        Kind::Auth,
                        format!("{op} failed (http {status}): {detail}; {}", self.hint()),
                    )
                } else {
                    Failure::new(Kind::Api, format!("{op} failed (http {status}): {detail}"))
                }
            }
            SdkError::TimeoutError(_) => Failure::new(
                Kind::Unreachable,
                format!("{op} timed out after {}s", OPERATION_TIMEOUT.as_secs()),
            ),
            SdkError::DispatchFailure(d) => {
                let text = cut(&error_chain(&e));
                // Identity resolution fails inside the dispatch: that is a credentials problem.
                if text.contains("loading credentials") || text.contains("access token") {
                    return Failure::new(
                        Kind::Auth,
                        format!("{op}: no usable credentials ({text}); {}", self.hint()),
                    );
                }
                let tls = text.contains("certificate") || text.to_ascii_lowercase().contains("tls");
                let kind = if tls {
                    Kind::Tls
                } else if d.is_io() || d.is_timeout() || d.is_other() {
                    Kind::Unreachable
                } else {
                    Kind::Api
                };
                Failure::new(kind, format!("{op}: cannot reach the endpoint: {text}"))
            }
            SdkError::ConstructionFailure(_) => {
                let text = error_chain(&e);
                if text.contains("credentials") || text.contains("identity") {
                    Failure::new(
                        Kind::Auth,
                        format!(
                            "{op}: no usable credentials: {}; {}",
                            cut(&text),
                            self.hint()
                        ),
                    )
                } else {
                    Failure::new(Kind::Internal, format!("{op}: {}", cut(&text)))
                }
            }
            _ => Failure::new(Kind::Api, format!("{op} failed: {}", cut(&error_chain(&e)))),
        }
    }

    /// What to do about rejected credentials.
    fn hint(&self) -> String {
        let p = &self.profile;
        if p.env_keys {
            return "check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN"
                .to_owned();
        }
        if p.sso {
            format!(
                "profile {}: run `aws sso login --profile {}`",
                p.name, p.name
            )
        } else {
            format!(
                "profile {}: check its credentials (`aws configure --profile {}`)",
                p.name, p.name
            )
        }
    }

    fn credentials_message(
        &self,
        e: &aws_credential_types::provider::error::CredentialsError,
    ) -> String {
        format!(
            "no usable credentials: {}; {}",
            cut(&error_chain(e)),
            self.hint()
        )
    }
}

/// SigV4 headers for a `GET` of `url` (the upgrade request); the body is empty.
fn sign_upgrade(
    url: &str,
    region: &str,
    creds: Credentials,
    now: SystemTime,
) -> core::result::Result<Vec<(String, String)>, String> {
    use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
    let identity = creds.into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(DATA_CHANNEL_SERVICE)
        .time(now)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| format!("cannot sign the upgrade: {e}"))?
        .into();
    let request = SignableRequest::new("GET", url, std::iter::empty(), SignableBody::Bytes(&[]))
        .map_err(|e| format!("cannot sign the upgrade: {e}"))?;
    let (instructions, _) = sign(request, &params)
        .map_err(|e| format!("cannot sign the upgrade: {e}"))?
        .into_parts();
    let (headers, _) = instructions.into_parts();
    Ok(headers
        .into_iter()
        .map(|h| (h.name().to_owned(), h.value().to_owned()))
        .collect())
}

/// Records which endpoint the SDK sent a call to, so its answer gets that endpoint's policy.
#[derive(Debug, Clone, Default)]
struct EndpointSeen(Arc<Mutex<Option<Endpoints>>>);

impl EndpointSeen {
    /// The policy of the endpoint that answered; AWS's when unknown.
    fn policy(&self) -> Endpoints {
        self.0
            .lock()
            .map(|g| g.unwrap_or(Endpoints::Aws))
            .unwrap_or(Endpoints::Aws)
    }
}

impl Intercept for EndpointSeen {
    fn name(&self) -> &'static str {
        "EndpointSeen"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> core::result::Result<(), BoxError> {
        let policy = endpoint_policy(context.request().uri());
        if let Ok(mut g) = self.0.lock() {
            *g = Some(policy);
        }
        Ok(())
    }
}

/// The SDK's HTTP client on rustls with ring, trusting the system roots and `AWS_CA_BUNDLE`.
fn http_client() -> Result<aws_smithy_runtime_api::client::http::SharedHttpClient> {
    use aws_smithy_http_client::tls::{
        rustls_provider::CryptoMode, Provider, TlsContext, TrustStore,
    };
    let mut trust = TrustStore::default();
    if let Some(path) = std::env::var_os("AWS_CA_BUNDLE").filter(|p| !p.is_empty()) {
        let pem = std::fs::read(&path).map_err(|e| {
            Failure::new(
                Kind::Tls,
                format!(
                    "cannot read AWS_CA_BUNDLE {}: {e}",
                    std::path::Path::new(&path).display()
                ),
            )
        })?;
        trust = trust.with_pem_certificate(pem);
    }
    let context = TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .map_err(|e| Failure::new(Kind::Tls, format!("tls configuration: {e}")))?;
    Ok(aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .tls_context(context)
        .build_https())
}

/// Reads the selected profile (for messages only; the SDK resolves credentials itself).
async fn profile_info(explicit: Option<&str>, fixed_credentials: bool) -> ProfileInfo {
    use aws_runtime::env_config::file::EnvConfigFiles as ProfileFiles;
    use aws_types::os_shim_internal::{Env, Fs};
    let name = explicit
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .or_else(|| std::env::var("AWS_PROFILE").ok().filter(|p| !p.is_empty()))
        .unwrap_or_else(|| "default".to_owned());
    let set = aws_config::profile::load(
        &Fs::real(),
        &Env::real(),
        &ProfileFiles::default(),
        Some(Cow::Owned(name.clone())),
    )
    .await
    .ok();
    let sso = set
        .as_ref()
        .and_then(|s| s.get_profile(&name))
        .is_some_and(|p| p.get("sso_session").is_some() || p.get("sso_start_url").is_some());
    let env_keys = !fixed_credentials
        && explicit.is_none_or(str::is_empty)
        && std::env::var("AWS_ACCESS_KEY_ID").is_ok_and(|v| !v.is_empty());
    ProfileInfo {
        name,
        sso,
        env_keys,
    }
}

fn is_auth_error(status: u16, code: &str) -> bool {
    matches!(status, 401 | 403)
        || matches!(
            code,
            "AccessDeniedException"
                | "UnrecognizedClientException"
                | "InvalidSignatureException"
                | "IncompleteSignatureException"
                | "MissingAuthenticationTokenException"
                | "ExpiredTokenException"
                | "ExpiredToken"
                | "InvalidClientTokenId"
                | "SignatureDoesNotMatch"
        )
}

/// An error and its sources, `: `-joined (what `DisplayErrorContext` prints, without the `Debug`).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = inner.source();
    }
    s
}

/// At most [`MAX_DETAIL`] characters, on one line.
fn cut(s: &str) -> String {
    let one: String = s.replace(['\n', '\r'], " ");
    match one.char_indices().nth(MAX_DETAIL) {
        Some((i, _)) => format!("{}...", &one[..i]),
        None => one,
    }
}

/// A document parameter value as the SDK wants it (strings as they are, others as JSON).
fn json_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_endpoints_relax_the_stream_url_rule() {
        for local in [
            "http://127.0.0.1:4566",
            "https://localhost",
            "http://[::1]:1/",
            "http://127.9.0.1",
        ] {
            assert_eq!(
                endpoint_policy(local),
                Endpoints::DangerousAnyHost,
                "{local}"
            );
        }
        for remote in [
            "https://ssm.us-east-1.amazonaws.com",
            "http://10.0.0.1:4566",
            "https://127.0.0.1.example.com",
            "ftp://127.0.0.1",
            "not a url",
        ] {
            assert_eq!(endpoint_policy(remote), Endpoints::Aws, "{remote}");
        }
    }

    #[test]
    fn grants_are_checked_under_the_policy() {
        let aws =
            "wss://ssmmessages.eu-west-1.amazonaws.com/v1/data-channel/s-1?role=publish_subscribe";
        assert!(grant_of("s-1", aws, "tok", Endpoints::Aws).is_ok());
        let local = "ws://127.0.0.1:4566/v1/data-channel/s-1?role=publish_subscribe";
        assert!(grant_of("s-1", local, "tok", Endpoints::DangerousAnyHost).is_ok());
        let e = grant_of("s-1", local, "tok", Endpoints::Aws).unwrap_err();
        assert_eq!(e.kind, Kind::Usage);
        assert!(!e.message.contains("127.0.0.1"), "{e}");
        assert!(grant_of(
            "s-1",
            "wss://attacker.example/v1/data-channel/s-1",
            "t",
            Endpoints::Aws
        )
        .is_err());
        // The path must name the session.
        assert!(grant_of(
            "s-1",
            "ws://127.0.0.1:1/v1/data-channel/other",
            "t",
            Endpoints::DangerousAnyHost
        )
        .is_err());
    }

    #[test]
    fn upgrade_signature_covers_host_and_carries_the_session_token() {
        let creds = Credentials::new(
            "AKIDEXAMPLE",
            "secret-key-xyz",
            Some("session-tok".into()),
            None,
            "test",
        );
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let h = sign_upgrade(
            "wss://ssmmessages.eu-west-1.amazonaws.com/v1/data-channel/s-1?role=publish_subscribe",
            "eu-west-1",
            creds,
            t,
        )
        .unwrap();
        let get = |n: &str| {
            h.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.as_str())
        };
        let auth = get("authorization").unwrap();
        assert!(auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20231114/eu-west-1/ssmmessages/aws4_request"), "{auth}");
        assert!(auth.contains("SignedHeaders=host;x-amz-date"), "{auth}");
        assert_eq!(get("x-amz-date"), Some("20231114T221320Z"));
        assert_eq!(get("x-amz-security-token"), Some("session-tok"));
        assert!(!h.iter().any(|(_, v)| v.contains("secret-key-xyz")));
    }

    #[test]
    fn details_are_cut_to_one_line() {
        let long = "x\n".repeat(400);
        let c = cut(&long);
        assert!(!c.contains('\n'));
        assert_eq!(c.chars().count(), MAX_DETAIL + 3);
    }
}
