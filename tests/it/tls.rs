//! TLS on both listeners from certificate and key files (a self-signed test certificate):
//! REST and gRPC answer over TLS, with the certificate trusted, and plain connections fail.

use crate::common;

use common::{TestServer, body_of};
use serde_json::json;
use summit_config::api::grpc::pb;
use summit_config::api::grpc::pb::config_service_client::ConfigServiceClient;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

const ADMIN: &str = "admin-token-for-the-tls-tests-0123456789";

/// A server with access control (`admin`'s token) serving TLS on both transports from a fresh
/// self-signed certificate for `localhost`: the server, the certificate's PEM file (its only
/// trust root) and the directory holding it.
pub(crate) async fn tls_server(admin: &str) -> (TestServer, std::path::PathBuf, tempfile::TempDir) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert_file, key_file) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_file, certified.cert.pem()).unwrap();
    std::fs::write(&key_file, certified.signing_key.serialize_pem()).unwrap();
    let admin = admin.to_owned();
    let (cert, key) = (cert_file.clone(), key_file);
    let server = TestServer::spawn_with(move |s| {
        s.no_auth = false;
        s.admin_token = Some(admin);
        s.tls_cert_file = Some(cert);
        s.tls_key_file = Some(key);
    })
    .await;
    (server, cert_file, dir)
}

#[tokio::test]
async fn rest_and_grpc_serve_tls_from_certificate_files() {
    let (server, cert_file, _dir) = tls_server(ADMIN).await;
    let cert_pem = std::fs::read_to_string(&cert_file).unwrap();
    let https = format!("https://localhost:{}", server.addr.port());

    let client = reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let response = client
        .put(format!("{https}/api/v1/configs/app"))
        .bearer_auth(ADMIN)
        .json(&json!({"config": {"a": 1}, "metadata": {"actor": "tls"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let (status, effective) = body_of(
        client
            .get(format!("{https}/api/v1/configs/app/effective"))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, effective["effectiveConfig"].clone()),
        (200, json!({"a": 1}))
    );
    // Plain HTTP on the TLS port gets no answer; a client that does not trust the
    // certificate fails the handshake.
    assert!(
        server
            .client
            .get(server.url("/health"))
            .send()
            .await
            .is_err()
    );
    let untrusting = reqwest::Client::builder().use_rustls_tls().build().unwrap();
    assert!(
        untrusting
            .get(format!("{https}/health"))
            .send()
            .await
            .is_err()
    );

    let channel = Channel::from_shared(format!("https://localhost:{}", server.grpc_addr.port()))
        .unwrap()
        .tls_config(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(&cert_pem))
                .domain_name("localhost"),
        )
        .unwrap()
        .connect()
        .await
        .expect("gRPC over TLS connects");
    let mut request = tonic::Request::new(pb::GetConfigRequest {
        config_id: "app".into(),
    });
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {ADMIN}").parse().unwrap());
    let version = ConfigServiceClient::new(channel)
        .get_config(request)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(version.version, 1);
    let plain = Channel::from_shared(format!("http://localhost:{}", server.grpc_addr.port()))
        .unwrap()
        .connect()
        .await;
    let refused = match plain {
        Err(_) => true,
        Ok(channel) => ConfigServiceClient::new(channel)
            .get_config(pb::GetConfigRequest {
                config_id: "app".into(),
            })
            .await
            .is_err(),
    };
    assert!(refused, "plain gRPC on the TLS port must fail");
}
