//! `GET /api/v1/watch` upgraded to a WebSocket (a real tungstenite client against the real
//! server): the same filters and events as SSE, resume by revision with no gap and no duplicate,
//! pings answered, refusals answered before the upgrade, access control on the handshake.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::common::{TestServer, meta};

const STEP: Duration = Duration::from_secs(10);

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(server: &TestServer, query: &str, token: Option<&str>) -> Socket {
    let mut request = format!("ws://{}/api/v1/watch{query}", server.addr)
        .into_client_request()
        .unwrap();
    if let Some(token) = token {
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    let (socket, response) = tokio::time::timeout(STEP, tokio_tungstenite::connect_async(request))
        .await
        .expect("handshake in time")
        .expect("the upgrade is accepted");
    assert_eq!(response.status(), 101);
    socket
}

/// The next change event (pings and pongs skipped).
async fn next_change(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(STEP, socket.next())
            .await
            .expect("an event in time")
            .expect("the socket stays open")
            .expect("a message");
        match message {
            Message::Text(text) => return serde_json::from_str(&text).expect("JSON"),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
}

async fn put(server: &TestServer, id: &str, value: u64) {
    server
        .put_config(
            id,
            json!({"config": {"value": value}, "metadata": meta("dev", "ws")}),
        )
        .await;
}

#[tokio::test]
async fn a_websocket_watch_streams_the_same_events_and_resumes_by_revision() {
    let server = TestServer::spawn().await;
    let mut socket = connect(&server, "?configId=ws-a", None).await;
    put(&server, "ws-b", 1).await; // filtered out
    put(&server, "ws-a", 1).await;
    let first = next_change(&mut socket).await;
    assert_eq!(first["kind"], "config.updated");
    assert_eq!(first["configId"], "ws-a");
    assert_eq!(first["version"], 1);
    // The client's ping is answered.
    socket
        .send(Message::Ping(b"alive?".to_vec().into()))
        .await
        .unwrap();
    let pong = loop {
        match tokio::time::timeout(STEP, socket.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            Message::Pong(payload) => break payload,
            Message::Ping(_) => continue,
            other => panic!("expected a pong, got {other:?}"),
        }
    };
    assert_eq!(&pong[..], b"alive?");
    socket.close(None).await.unwrap();

    // Changes while away arrive on resume, in order, once each.
    put(&server, "ws-a", 2).await;
    put(&server, "ws-a", 3).await;
    let revision = first["revision"].as_u64().unwrap();
    let mut resumed = connect(
        &server,
        &format!("?configId=ws-a&fromRevision={revision}"),
        None,
    )
    .await;
    let (second, third) = (
        next_change(&mut resumed).await,
        next_change(&mut resumed).await,
    );
    assert_eq!(
        (second["version"].clone(), third["version"].clone()),
        (json!(2), json!(3))
    );
    assert!(second["revision"].as_u64().unwrap() > revision);
    put(&server, "ws-a", 4).await;
    assert_eq!(next_change(&mut resumed).await["version"], 4, "then live");
}

#[tokio::test]
async fn a_websocket_watch_is_refused_before_the_upgrade() {
    let server = TestServer::spawn().await;
    let request = format!("ws://{}/api/v1/watch?fromRevision=99", server.addr);
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 400);
        }
        other => panic!("expected a 400 before the upgrade, got {other:?}"),
    }

    let secured = TestServer::spawn_with(|s| {
        s.no_auth = false;
        s.admin_token = Some("admin-token-for-the-websocket-tests-0123".into());
    })
    .await;
    let request = format!("ws://{}/api/v1/watch", secured.addr);
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 401);
        }
        other => panic!("expected a 401 without a credential, got {other:?}"),
    }
    let mut socket = connect(
        &secured,
        "",
        Some("admin-token-for-the-websocket-tests-0123"),
    )
    .await;
    put_as(&secured, "secured-ws").await;
    assert_eq!(next_change(&mut socket).await["configId"], "secured-ws");
}

async fn put_as(server: &TestServer, id: &str) {
    let (status, body) = crate::authorization::call(
        server,
        "admin-token-for-the-websocket-tests-0123",
        reqwest::Method::PUT,
        &format!("/api/v1/configs/{id}"),
        Some(json!({"config": {"on": true}, "metadata": meta("admin", "ws")})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn a_watcher_sending_a_large_message_is_closed_instead_of_held() {
    let server = TestServer::spawn().await;
    let mut socket = connect(&server, "?configId=big", None).await;
    socket
        .send(Message::Text("x".repeat(1 << 20).into()))
        .await
        .unwrap();
    let closed = loop {
        let next = tokio::time::timeout(STEP, socket.next())
            .await
            .expect("the server answers in time");
        match next {
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => break other,
        }
    };
    match closed {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(u16::from(frame.code), 1009),
        // The server may close the connection before its close frame is read.
        Some(Ok(Message::Close(None)) | Err(_)) | None => {}
        other => panic!("expected the socket to close, got {other:?}"),
    }
}
