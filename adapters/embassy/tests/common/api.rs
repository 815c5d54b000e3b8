//! The device's own API calls against the emulator, as the API tests use them: start a
//! command, open its data channel (signed upgrade, verified TLS), read a session to its end.

use embedded_io_async::Read;
use embedded_tls::{TlsReader, TlsWriter};
use ssm_embassy::api::StartSessionRequest;
use ssm_embassy::tls::CipherSuite;
use ssm_embassy::{Api, ApiBuffers, Config, Resources, Session};
use ssm_proto::model::StartSessionResponse;

/// The transport under [`TestConnection`](super::TestConnection)'s TLS.
pub type Socket = ssm_embassy::duplex::Duplex<
    'static,
    embedded_io_adapters::tokio_1::FromTokio<tokio::net::tcp::OwnedReadHalf>,
    embedded_io_adapters::tokio_1::FromTokio<tokio::net::tcp::OwnedWriteHalf>,
>;
/// Read half of a test TLS connection.
pub type Reader = TlsReader<'static, Socket, CipherSuite>;
/// Write half of a test TLS connection.
pub type Writer = TlsWriter<'static, Socket, CipherSuite>;
/// The runner of a session over a test TLS connection.
pub type TestRunner = ssm_embassy::Runner<'static, Reader, Writer, 4096>;

fn leak<T>(t: T) -> &'static mut T {
    Box::leak(Box::new(t))
}

/// Long-term credentials (AWS's documentation example), the strict emulator's in most tests.
pub const CREDS: ssm_proto::sigv4::Credentials<'static> = ssm_proto::sigv4::Credentials {
    access_key_id: "AKIDEXAMPLE",
    secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
    session_token: None,
};

/// A signing clock set from the host's.
pub fn system_clock() -> &'static ssm_embassy::Clock {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    leak(ssm_embassy::Clock::from_unix_secs(now))
}

/// StartSession of `AWS-StartNonInteractiveCommand` with `command`, through `api` on `conn`.
pub async fn start_command(
    api: &Api<'static>,
    conn: &mut super::TestConnection,
    command: &str,
) -> StartSessionResponse<'static> {
    let values = [command];
    let params = [("command", &values[..])];
    let request = StartSessionRequest {
        target: "i-0emulator",
        document_name: Some("AWS-StartNonInteractiveCommand"),
        parameters: &params,
        reason: None,
    };
    let buffers: &'static mut ApiBuffers = leak(ApiBuffers::new());
    api.start_session(conn, &request, buffers).await.unwrap()
}

/// A session on `response`'s data channel: verified TLS to `localhost:port`, the upgrade
/// signed by `api`. Returns the handle, the runner and the signature sent.
pub async fn open_session(
    api: &Api<'static>,
    response: &StartSessionResponse<'static>,
    port: u16,
    ca: &'static [u8],
    seed: u64,
) -> (Session<'static>, TestRunner, &'static str) {
    let mut config = Config::from_response(response);
    assert_eq!(config.port, port);
    let signed = leak(api.sign_upgrade(&response.stream_url()).unwrap());
    let (headers, n) = signed.headers();
    let headers: &'static [(&'static str, &'static str)] = Box::leak(Box::new(headers));
    config.headers = &headers[..n];
    let signature = headers[1].1.split("Signature=").nth(1).unwrap();
    let conn = super::tls_to_localhost(port, ca).await;
    let resources: &'static mut Resources = leak(Resources::new());
    let (session, runner) = ssm_embassy::new(conn.split(), config, resources, seed);
    (session, runner, signature)
}

/// Reads the session's output to its end (or the first error).
pub async fn read_all(session: Session<'static>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 2048];
    loop {
        match { session }.read(&mut buf).await {
            Ok(0) | Err(_) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// An API client for `emu` (`127.0.0.1`, its port, TLS, `us-east-1`; loopback StreamUrls
/// allowed) and the emulator's root (DER) to verify it with.
pub fn emulator_api(
    emu: &ssm_emulator::Emulator,
    credentials: ssm_proto::sigv4::Credentials<'static>,
    clock: &'static ssm_embassy::Clock,
) -> (Api<'static>, &'static [u8]) {
    use rustls_pki_types::pem::PemObject;
    let ca = rustls_pki_types::CertificateDer::from_pem_slice(emu.ca_pem().as_bytes()).unwrap();
    let api = Api {
        endpoint: ssm_embassy::api::Endpoint {
            host: "127.0.0.1",
            port: emu.addr().port(),
            tls: true,
            region: "us-east-1",
        },
        credentials,
        clock,
        stream_urls: ssm_embassy::StreamUrls::LoopbackForTests,
    };
    (api, Box::leak(ca.to_vec().into_boxed_slice()))
}

/// A `ResumeSource` for the emulator: ResumeSession through the device's API client on one
/// kept-alive connection, then a new verified TLS connection to the answer's StreamUrl port,
/// with a signed upgrade. Counts its calls.
pub struct EmulatorSource {
    api: Api<'static>,
    api_conn: &'static mut super::TestConnection,
    buffers: ApiBuffers,
    ca: &'static [u8],
    pub resumes: core::cell::Cell<u32>,
}

impl EmulatorSource {
    pub fn new(
        api: Api<'static>,
        api_conn: &'static mut super::TestConnection,
        ca: &'static [u8],
    ) -> Self {
        Self {
            api,
            api_conn,
            buffers: ApiBuffers::new(),
            ca,
            resumes: core::cell::Cell::new(0),
        }
    }
}

impl ssm_embassy::ResumeSource for EmulatorSource {
    type Transport<'c> = (Reader, Writer);

    async fn resume<'c>(
        &'c mut self,
        session_id: &str,
    ) -> Result<ssm_embassy::Resumed<'c, (Reader, Writer)>, ssm_embassy::Error> {
        self.resumes.set(self.resumes.get() + 1);
        let response = self
            .api
            .resume_session(&mut *self.api_conn, session_id, &mut self.buffers)
            .await?;
        let signed = leak(self.api.sign_upgrade(&response.stream_url())?);
        let (headers, n) = signed.headers();
        let conn = super::tls_to_localhost(response.stream_url().port(), self.ca).await;
        Ok(ssm_embassy::Resumed {
            response,
            transport: conn.split(),
            headers: heapless::Vec::from_slice(&headers[..n]).unwrap(),
        })
    }
}

impl ssm_embassy::OpenSource for EmulatorSource {
    async fn open<'c>(
        &'c mut self,
        response: &StartSessionResponse<'_>,
    ) -> Result<ssm_embassy::Opened<'c, (Reader, Writer)>, ssm_embassy::Error> {
        let signed = leak(self.api.sign_upgrade(&response.stream_url())?);
        let (headers, n) = signed.headers();
        let conn = super::tls_to_localhost(response.stream_url().port(), self.ca).await;
        Ok(ssm_embassy::Opened {
            transport: conn.split(),
            headers: heapless::Vec::from_slice(&headers[..n]).unwrap(),
        })
    }
}
