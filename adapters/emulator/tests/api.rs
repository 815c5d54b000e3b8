//! The emulator's SSM JSON API over real HTTP, as botocore sends it.
#![allow(
    clippy::std_instead_of_core,
    reason = "a std test; the workspace lint guards the no_std core"
)]

use std::time::Duration;

use ssm_emulator::{Emulator, EmulatorConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One request on a fresh connection; returns (status, body).
async fn post(addr: std::net::SocketAddr, target: &str, body: &str) -> (u16, serde_json::Value) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nX-Amz-Target: {target}\r\n\
         Content-Type: application/x-amz-json-1.1\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/us-east-1/ssm/aws4_request, SignedHeaders=host, Signature=00\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut resp = Vec::new();
    // The server keeps the connection open for more requests: read the head, then the body.
    let mut buf = [0u8; 4096];
    let (status, body) = loop {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "eof: {}", String::from_utf8_lossy(&resp));
        resp.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&resp).into_owned();
        if let Some(i) = text.find("\r\n\r\n") {
            let head = &text[..i];
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .unwrap()
                .parse()
                .unwrap();
            if resp.len() >= i + 4 + len {
                let status = head[9..12].parse().unwrap();
                break (
                    status,
                    serde_json::from_slice(&resp[i + 4..i + 4 + len]).unwrap(),
                );
            }
        }
    };
    (status, body)
}

#[tokio::test]
async fn start_resume_terminate() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let (st, v) = post(
        emu.addr(),
        "AmazonSSM.StartSession",
        r#"{"Target":"i-0123","DocumentName":"AWS-StartNonInteractiveCommand","Parameters":{"command":["true"]}}"#,
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let id = v["SessionId"].as_str().unwrap().to_string();
    let url = v["StreamUrl"].as_str().unwrap();
    assert_eq!(
        url,
        format!(
            "wss://{}/v1/data-channel/{id}?role=publish_subscribe",
            emu.addr()
        )
    );
    let token = v["TokenValue"].as_str().unwrap().to_string();
    assert!(token.len() >= 32);

    let (st, r) = post(
        emu.addr(),
        "AmazonSSM.ResumeSession",
        &format!(r#"{{"SessionId":"{id}"}}"#),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(r["SessionId"], id.as_str());
    assert_ne!(r["TokenValue"].as_str().unwrap(), token);

    let (st, t) = post(
        emu.addr(),
        "AmazonSSM.TerminateSession",
        &format!(r#"{{"SessionId":"{id}"}}"#),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(t["SessionId"], id.as_str());

    let (st, e) = post(
        emu.addr(),
        "AmazonSSM.ResumeSession",
        &format!(r#"{{"SessionId":"{id}"}}"#),
    )
    .await;
    assert_eq!(st, 400);
    assert_eq!(e["__type"], "DoesNotExistException");
}

#[tokio::test]
async fn errors_name_the_problem() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let (st, e) = post(
        emu.addr(),
        "AmazonSSM.StartSession",
        r#"{"Target":"i-1","DocumentName":"AWS-StartInteractiveCommand"}"#,
    )
    .await;
    assert_eq!(
        (st, e["__type"].as_str()),
        (400, Some("ValidationException"))
    );
    let (st, e) = post(
        emu.addr(),
        "AmazonSSM.StartSession",
        r#"{"Target":"i-1","DocumentName":"No-Such-Doc"}"#,
    )
    .await;
    assert_eq!((st, e["__type"].as_str()), (400, Some("InvalidDocument")));
    let (st, e) = post(emu.addr(), "AmazonSSM.DescribeSessions", "{}").await;
    assert_eq!(
        (st, e["__type"].as_str()),
        (400, Some("UnknownOperationException"))
    );
}

#[tokio::test]
async fn data_channel_for_an_unknown_session_is_404() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let url = format!(
        "wss://{}/v1/data-channel/nope?role=publish_subscribe",
        emu.addr()
    );
    let r = ssm_proto::model::StartSessionResponse::new(
        "nope",
        &url,
        "t",
        ssm_tokio::Endpoints::DangerousAnyHost,
    )
    .unwrap();
    let target = ssm_tokio::Grant::from_borrowed(&r).unwrap();
    let err = ssm_tokio::connect(
        target,
        ssm_tokio::ConnectOptions {
            tls: emu.client_tls(),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "websocket failure: server answered the upgrade with http 404 Not Found"
    );
}

/// The local KMS on the same port: a data key for a session's context decrypts only with that
/// context, as in AWS.
#[tokio::test]
async fn local_kms_binds_the_encryption_context() {
    let emu = Emulator::start(EmulatorConfig {
        kms_key_id: Some("alias/ssm-sessions".into()),
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let context = r#"{"aws:ssm:SessionId":"user-0123","aws:ssm:TargetId":"i-0123","aws:ssm:RandomChallenge":"AAECAwQFBgcICQoLDA0ODw=="}"#;
    let (st, g) = post(
        emu.addr(),
        "TrentService.GenerateDataKey",
        &format!(
            r#"{{"KeyId":"alias/ssm-sessions","NumberOfBytes":64,"EncryptionContext":{context}}}"#
        ),
    )
    .await;
    assert_eq!(st, 200, "{g}");
    let blob = g["CiphertextBlob"].as_str().unwrap();
    let (st, d) = post(
        emu.addr(),
        "TrentService.Decrypt",
        &format!(r#"{{"CiphertextBlob":"{blob}","EncryptionContext":{context}}}"#),
    )
    .await;
    assert_eq!(st, 200, "{d}");
    assert_eq!(d["Plaintext"], g["Plaintext"]);
    // Without the challenge (a client that did not acknowledge it): refused.
    let (st, e) = post(
        emu.addr(),
        "TrentService.Decrypt",
        &format!(
            r#"{{"CiphertextBlob":"{blob}","EncryptionContext":{{"aws:ssm:SessionId":"user-0123","aws:ssm:TargetId":"i-0123"}}}}"#
        ),
    )
    .await;
    assert_eq!(st, 400);
    assert_eq!(e["__type"], "InvalidCiphertextException");
    let (st, e) = post(
        emu.addr(),
        "TrentService.GenerateDataKey",
        r#"{"KeyId":"alias/another","NumberOfBytes":64}"#,
    )
    .await;
    assert_eq!(st, 400);
    assert_eq!(e["__type"], "NotFoundException");
}

/// Without a configured key there is no KMS: a clear error, not a fake key.
#[tokio::test]
async fn no_kms_without_a_key() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let (st, e) = post(
        emu.addr(),
        "TrentService.GenerateDataKey",
        r#"{"KeyId":"alias/x","NumberOfBytes":64}"#,
    )
    .await;
    assert_eq!(st, 400);
    assert_eq!(e["__type"], "UnknownOperationException");
}
