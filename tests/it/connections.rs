//! Connection hygiene (issue 15): clients that send nothing, drip their headers, stop reading
//! or flood the listeners are closed or refused, while normal requests keep being answered.
//! Every client here is on loopback, every flood is bounded, and every wait has a generous
//! limit: the tests pin what happens, not how fast.

use crate::common;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use common::postgres::PgCluster;
use common::{TestServer, meta};
use serde_json::json;
use summit_config::settings::Settings;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

/// Longest wait for anything the server should do.
const PATIENCE: Duration = Duration::from_secs(20);

pub(crate) async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, future)
        .await
        .unwrap_or_else(|_| panic!("timed out after {PATIENCE:?}: {what}"))
}

fn short_deadlines(settings: &mut Settings) {
    settings.header_read_timeout_secs = 1;
    settings.idle_timeout_secs = 2;
    settings.http2_keepalive_interval_secs = 1;
    settings.http2_keepalive_timeout_secs = 1;
}

/// Reads until the server closes the connection; what it sent on the way.
async fn until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return received,
            Ok(n) => received.extend_from_slice(&buffer[..n]),
        }
    }
}

/// Writes a one-setting config `id`.
async fn put_small(server: &TestServer, id: &str) {
    server
        .put_config(id, json!({"config": {"a": 1}, "metadata": meta("t", "m")}))
        .await;
}

/// A REST read that hits the database, retried until it answers 200.
async fn read_answers(server: &TestServer, id: &str) {
    within("a normal read answers", async {
        loop {
            let response = server
                .client
                .get(server.url(&format!("/api/v1/configs/{id}/versions")))
                .send()
                .await;
            if response.is_ok_and(|r| r.status() == 200) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
}

async fn health_answers(grpc: SocketAddr) {
    within("a gRPC health check answers", async {
        loop {
            let answered = async {
                let channel = tonic::transport::Endpoint::from_shared(format!("http://{grpc}"))
                    .ok()?
                    .connect()
                    .await
                    .ok()?;
                HealthClient::new(channel)
                    .check(HealthCheckRequest::default())
                    .await
                    .ok()
            };
            if answered.await.is_some() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
}

/// Connects and sends `bytes` one at a time, `pause` apart, until the server closes the
/// connection; how many it sent by then (all of them: it was never closed).
async fn drip(address: SocketAddr, bytes: &[u8], pause: Duration) -> usize {
    let mut stream = TcpStream::connect(address).await.expect("connects");
    drip_on(&mut stream, bytes, pause).await
}

/// `drip` on a connection already open.
async fn drip_on(stream: &mut TcpStream, bytes: &[u8], pause: Duration) -> usize {
    let mut buffer = [0u8; 1024];
    for (sent, byte) in bytes.iter().enumerate() {
        if stream.write_all(&[*byte]).await.is_err() {
            return sent;
        }
        let answer = tokio::time::timeout(pause, stream.read(&mut buffer)).await;
        if let Ok(Ok(0) | Err(_)) = answer {
            return sent + 1;
        }
    }
    bytes.len()
}

#[tokio::test]
async fn slowloris_connections_are_closed_while_reads_answer() {
    let server = TestServer::spawn_with(short_deadlines).await;
    put_small(&server, "slow").await;
    // About 70 bytes at 5 a second: 14 s to finish the headers, against a 1 s deadline.
    let request =
        b"GET /api/v1/configs/slow HTTP/1.1\r\nHost: localhost\r\nX-Pad: abcdefghij\r\n\r\n";
    let drips: Vec<_> = (0..50)
        .map(|_| tokio::spawn(drip(server.addr, request, Duration::from_millis(200))))
        .collect();
    let mut silent = TcpStream::connect(server.addr).await.expect("connects");
    tokio::time::sleep(Duration::from_millis(300)).await;
    read_answers(&server, "slow").await;
    let received = within("a silent connection is closed", until_closed(&mut silent)).await;
    assert!(
        received.is_empty(),
        "a silent connection was sent {received:?}"
    );
    for drip in drips {
        let sent = within("a slowloris connection ends", drip).await.unwrap();
        assert!(
            sent < request.len(),
            "a connection dripping its headers was served to the end"
        );
    }
    read_answers(&server, "slow").await;
}

#[tokio::test]
async fn grpc_connections_that_drip_the_preface_are_closed() {
    let server = TestServer::spawn_with(short_deadlines).await;
    let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let drips: Vec<_> = (0..20)
        .map(|_| tokio::spawn(drip(server.grpc_addr, preface, Duration::from_millis(200))))
        .collect();
    health_answers(server.grpc_addr).await;
    for drip in drips {
        let sent = within("a dripping gRPC connection ends", drip)
            .await
            .unwrap();
        assert!(sent < preface.len(), "a dripped preface was accepted");
    }
}

#[tokio::test]
async fn an_idle_flood_beyond_the_bound_gives_way_to_clients_that_send_requests() {
    let server = TestServer::spawn_with(|settings| {
        short_deadlines(settings);
        // Far longer than the test: the flood gives way, it is not waited out.
        settings.header_read_timeout_secs = 600;
        settings.max_connections = 64;
    })
    .await;
    server
        .put_config(
            "flooded",
            json!({"config": {"a": 1}, "metadata": meta("t", "m")}),
        )
        .await;
    let mut idle = Vec::new();
    for _ in 0..100 {
        idle.push(TcpStream::connect(server.addr).await.expect("connects"));
    }
    // Every slot is taken, mostly by idle connections: reads still answer.
    read_answers(&server, "flooded").await;
    let reads: Vec<_> = (0..32)
        .map(|_| {
            server
                .client
                .get(server.url("/api/v1/configs/flooded"))
                .send()
        })
        .collect();
    for response in futures::future::join_all(reads).await {
        assert_eq!(response.expect("answered").status(), 200);
    }
    // The oldest idle connections gave way, closed with nothing sent.
    for mut stream in idle.drain(..36) {
        let received = within("an idle connection gives way", until_closed(&mut stream)).await;
        assert!(
            received.is_empty(),
            "an idle connection was sent {received:?}"
        );
    }
}

#[tokio::test]
async fn when_every_connection_is_in_use_a_new_one_is_refused_with_503() {
    let server = TestServer::spawn_with(|settings| settings.max_connections = 4).await;
    let mut watches = Vec::new();
    for _ in 0..4 {
        let mut watch = TcpStream::connect(server.addr).await.expect("connects");
        watch
            .write_all(b"GET /api/v1/watch HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .unwrap();
        let mut head = [0u8; 12];
        within("the watch is served", watch.read_exact(&mut head))
            .await
            .unwrap();
        assert_eq!(&head, b"HTTP/1.1 200");
        watches.push(watch);
    }
    let mut refused = TcpStream::connect(server.addr).await.expect("connects");
    let received = within("the refusal", until_closed(&mut refused)).await;
    let text = String::from_utf8_lossy(&received);
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(text.contains("retry-after: 1"), "{text}");
    // A watcher leaves: its slot is free for the next client.
    watches.pop();
    within(
        "a read once a slot is free",
        server.put_config("free", json!({"config": {}, "metadata": meta("t", "m")})),
    )
    .await;
}

#[tokio::test]
async fn kept_alive_connections_are_closed_after_the_idle_timeout() {
    let server = TestServer::spawn_with(short_deadlines).await;
    put_small(&server, "kept").await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connects");
    stream
        .write_all(b"GET /api/v1/configs/kept HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let received = within(
        "the kept-alive connection is closed",
        until_closed(&mut stream),
    )
    .await;
    let text = String::from_utf8_lossy(&received);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(!text.contains("connection: close"), "{text}");
}

#[tokio::test]
async fn an_idle_grpc_flood_is_closed_and_calls_answer() {
    let server = TestServer::spawn_with(|settings| {
        short_deadlines(settings);
        settings.max_connections = 64;
    })
    .await;
    // Opened the connection properly, then went silent: pings go unanswered.
    let mut silent = TcpStream::connect(server.grpc_addr)
        .await
        .expect("connects");
    let settings_frame = [0u8, 0, 0, 4, 0, 0, 0, 0, 0];
    silent
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    silent.write_all(&settings_frame).await.unwrap();
    let mut idle = Vec::new();
    for _ in 0..100 {
        idle.push(
            TcpStream::connect(server.grpc_addr)
                .await
                .expect("connects"),
        );
    }
    let endings: Vec<_> = idle
        .into_iter()
        .chain([silent])
        .map(|mut stream| tokio::spawn(async move { until_closed(&mut stream).await }))
        .collect();
    for ending in endings {
        within("an idle gRPC connection is closed", ending)
            .await
            .unwrap();
    }
    health_answers(server.grpc_addr).await;
}

#[tokio::test]
async fn a_kept_alive_connection_that_drips_its_next_request_is_closed() {
    let server = TestServer::spawn_with(short_deadlines).await;
    put_small(&server, "kept").await;
    let request =
        b"GET /api/v1/configs/kept HTTP/1.1\r\nHost: localhost\r\nX-Pad: abcdefghij\r\n\r\n";
    let mut stream = TcpStream::connect(server.addr).await.expect("connects");
    stream.write_all(request).await.unwrap();
    let mut buffer = [0u8; 4096];
    let n = within("the first request is answered", stream.read(&mut buffer))
        .await
        .unwrap();
    assert!(
        buffer[..n].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buffer[..n])
    );
    // The next request's headers at 5 bytes a second: 14 s, against a 2 s idle timeout.
    let sent = within(
        "the dripping connection is closed",
        drip_on(&mut stream, request, Duration::from_millis(200)),
    )
    .await;
    assert!(
        sent < request.len(),
        "a kept-alive connection dripping its next request was served"
    );
    read_answers(&server, "kept").await;
}

/// Reads from `stream` until what it has read contains `needle`.
async fn read_until(stream: &mut TcpStream, needle: &str) -> String {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let n = stream
            .read(&mut buffer)
            .await
            .expect("the stream stays open");
        assert!(
            n > 0,
            "closed before {needle:?}: {}",
            String::from_utf8_lossy(&received)
        );
        received.extend_from_slice(&buffer[..n]);
        let text = String::from_utf8_lossy(&received);
        if text.contains(needle) {
            return text.into_owned();
        }
    }
}

#[tokio::test]
async fn quiet_watches_outlive_the_idle_timeout() {
    let server = TestServer::spawn_with(short_deadlines).await;
    let mut sse = TcpStream::connect(server.addr).await.expect("connects");
    sse.write_all(b"GET /api/v1/watch HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    within("the SSE watch starts", read_until(&mut sse, "\r\n\r\n")).await;
    let mut websocket = TcpStream::connect(server.addr).await.expect("connects");
    websocket
        .write_all(
            b"GET /api/v1/watch HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\n\
              Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        )
        .await
        .unwrap();
    let handshake = within(
        "the WebSocket upgrade",
        read_until(&mut websocket, "\r\n\r\n"),
    )
    .await;
    assert!(handshake.starts_with("HTTP/1.1 101"), "{handshake}");
    // Twice the idle timeout with nothing sent either way (keep-alives come every 15 s).
    tokio::time::sleep(Duration::from_secs(5)).await;
    put_small(&server, "after-quiet").await;
    within(
        "the SSE watcher gets the change",
        read_until(&mut sse, "after-quiet"),
    )
    .await;
    within(
        "the WebSocket watcher gets the change",
        read_until(&mut websocket, "after-quiet"),
    )
    .await;
}

/// Opens an SSE watch that is never read, with a small receive window so what the server
/// cannot send stays with the server.
async fn stalled_watch(address: SocketAddr, query: &str) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(address).await.expect("connects");
    let request = format!("GET /api/v1/watch{query} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    stream
}

/// A config of `settings` × about 100 bytes whose every version changes each setting (a patch
/// of as much; patches up to 16 KB travel in events).
fn big_config(settings: usize, generation: usize) -> serde_json::Value {
    let settings: serde_json::Map<_, _> = (0..settings)
        .map(|k| {
            (
                format!("setting_{k:03}"),
                json!(format!("{generation}-{k}-{}", "x".repeat(80))),
            )
        })
        .collect();
    json!({"config": settings, "metadata": meta("t", "m")})
}

/// More never-read watchers than the pool has connections, all catching up from the start of
/// a long change log: writes and reads that need the database are still answered.
async fn stalled_watchers_leave_the_pool_to_requests(server: TestServer) {
    for generation in 0..3 {
        for i in 0..40 {
            server
                .put_config(&format!("w{i}"), big_config(40, generation))
                .await;
        }
    }
    let mut watchers = Vec::new();
    for _ in 0..60 {
        watchers.push(stalled_watch(server.addr, "?fromRevision=0").await);
    }
    for i in 0..40 {
        within(
            "a write while watchers are stalled",
            server.put_config(&format!("w{i}"), big_config(40, 3)),
        )
        .await;
    }
    read_answers(&server, "w0").await;
    let (status, versions) = within(
        "a history read",
        server.get_json("/api/v1/configs/w1/versions"),
    )
    .await;
    assert_eq!(status, 200, "{versions}");
    drop(watchers);
}

#[tokio::test]
async fn stalled_sse_watchers_leave_the_sqlite_pool_to_requests() {
    stalled_watchers_leave_the_pool_to_requests(TestServer::spawn().await).await;
}

#[tokio::test]
async fn stalled_sse_watchers_leave_the_postgres_pool_to_requests() {
    let Some(cluster) = PgCluster::shared().await else {
        return;
    };
    let url = cluster.new_database().await;
    let server = TestServer::spawn_with(|settings| settings.database_url = url).await;
    stalled_watchers_leave_the_pool_to_requests(server).await;
}

#[tokio::test]
async fn a_watcher_that_stops_reading_is_disconnected() {
    let server = TestServer::spawn_with(short_deadlines).await;
    let mut watcher = stalled_watch(server.addr, "").await;
    // Enough events (about 14 KB each) to fill both sockets' buffers (loopback lets the
    // server's grow to megabytes), the watcher's buffer and hyper's.
    for i in 0..500 {
        server
            .put_config(&format!("s{}", i % 50), big_config(100, i))
            .await;
    }
    // Reading now: a connection the server gave up on ends; a live one would not.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let received = within(
        "the stalled watcher is disconnected",
        until_closed(&mut watcher),
    )
    .await;
    assert!(
        received.starts_with(b"HTTP/1.1 200"),
        "the watch was not served"
    );
}

/// Sends one GET on `stream` and reads the whole answer (its body has a `content-length`),
/// leaving the connection open; the answer's first 12 bytes (`HTTP/1.1 200`).
async fn get_status_line(stream: &mut TcpStream, path: &str) -> String {
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut answer = Vec::new();
    let mut byte = [0u8; 1];
    while !answer.ends_with(b"\r\n\r\n") {
        within("an answer's head", stream.read_exact(&mut byte))
            .await
            .unwrap();
        answer.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&answer).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length: "))
        .and_then(|value| value.trim().parse().ok())
        .expect("a content-length");
    let mut body = vec![0u8; length];
    within("an answer's body", stream.read_exact(&mut body))
        .await
        .unwrap();
    head[..12].to_uppercase()
}

/// Longer than the quiet a connection must have had before it gives way (2 s).
const IDLE_ENOUGH: Duration = Duration::from_millis(2500);

#[tokio::test]
async fn when_every_slot_is_taken_the_connection_idle_longest_gives_way() {
    let server = TestServer::spawn_with(|settings| settings.max_connections = 2).await;
    // Two kept-alive connections, each answered once, then quiet.
    let mut first = TcpStream::connect(server.addr).await.expect("connects");
    assert_eq!(get_status_line(&mut first, "/health").await, "HTTP/1.1 200");
    let mut second = TcpStream::connect(server.addr).await.expect("connects");
    assert_eq!(
        get_status_line(&mut second, "/health").await,
        "HTTP/1.1 200"
    );
    // Not quiet for long enough yet: a third client is refused, nobody is closed.
    let mut refused = TcpStream::connect(server.addr).await.expect("connects");
    let received = within("the refusal", until_closed(&mut refused)).await;
    assert!(
        String::from_utf8_lossy(&received).starts_with("HTTP/1.1 503"),
        "{received:?}"
    );
    tokio::time::sleep(IDLE_ENOUGH).await;
    // Now the one quiet the longest (the first) makes room, and the new client is answered.
    let mut third = TcpStream::connect(server.addr).await.expect("connects");
    assert_eq!(get_status_line(&mut third, "/health").await, "HTTP/1.1 200");
    let received = within("the idlest connection is closed", until_closed(&mut first)).await;
    assert!(
        received.is_empty(),
        "it was sent {received:?} before closing"
    );
    // The other one is still served.
    assert_eq!(
        get_status_line(&mut second, "/health").await,
        "HTTP/1.1 200"
    );
}

#[tokio::test]
async fn a_grpc_connection_with_a_call_in_flight_never_gives_way_and_a_quiet_one_does() {
    use summit_config::api::grpc::pb;
    use summit_config::api::grpc::pb::config_service_client::ConfigServiceClient;

    let server = TestServer::spawn_with(|settings| settings.max_connections = 2).await;
    let endpoint = format!("http://{}", server.grpc_addr);
    let connect = || async {
        tonic::transport::Endpoint::from_shared(endpoint.clone())
            .unwrap()
            .connect()
            .await
            .expect("the gRPC connection opens")
    };
    // A watcher: its stream is in flight for as long as it watches.
    let mut watcher = ConfigServiceClient::new(connect().await);
    let mut events = within(
        "the watch opens",
        watcher.watch(pb::WatchRequest {
            config_ids: vec!["kept".into()],
            ..Default::default()
        }),
    )
    .await
    .expect("watch")
    .into_inner();
    // A client that made one call and went quiet.
    let quiet = connect().await;
    within(
        "a health check",
        HealthClient::new(quiet).check(HealthCheckRequest::default()),
    )
    .await
    .expect("health answers");
    tokio::time::sleep(IDLE_ENOUGH).await;
    // A new client gets the quiet one's slot, never the watcher's.
    let mut writer = ConfigServiceClient::new(connect().await);
    within(
        "a write on the new connection",
        writer.put_config(pb::PutConfigRequest {
            config_id: "kept".into(),
            document: Some(pb::ConfigDocument {
                config_json: r#"{"a":1}"#.into(),
                ..Default::default()
            }),
            metadata: Some(pb::Metadata {
                actor: "t".into(),
                message: Some("m".into()),
            }),
            expected_version: None,
        }),
    )
    .await
    .expect("the write is served");
    within("the watcher sees the write", async {
        loop {
            let event = events
                .message()
                .await
                .expect("the watch goes on")
                .expect("an event");
            if let Some(pb::watch_event::Event::Change(change)) = event.event {
                assert_eq!(change.config_id, "kept");
                return;
            }
        }
    })
    .await;
}
