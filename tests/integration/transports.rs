//! The legacy HTTP+SSE and WebSocket transports: handshake, message flow, errors, session end,
//! proxy prefixes, transport switches, mixed sessions with colliding ids, and a slow reader.

use crate::support::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message as Frame;

/// A legacy SSE session: the open stream and the POST URI from its `endpoint` event.
pub struct SseSession {
    stream: reqwest::Response,
    buffer: String,
    pub endpoint: String,
    base: String,
}

impl SseSession {
    /// Opens `GET {base}{path}` and reads the `endpoint` event.
    pub async fn open(base: &str, path: &str, headers: &[(&str, &str)]) -> SseSession {
        let mut req = http().get(format!("{base}{path}"));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let stream = req.send().await.unwrap();
        assert_eq!(stream.status(), 200);
        assert_eq!(stream.headers()["content-type"], "text/event-stream");
        let mut s = SseSession {
            stream,
            buffer: String::new(),
            endpoint: String::new(),
            base: base.to_string(),
        };
        let event = s.next_event().await;
        let data = event
            .strip_prefix("event: endpoint\ndata: ")
            .unwrap_or_else(|| panic!("first event is endpoint: {event:?}"));
        s.endpoint = data.to_string();
        s
    }

    /// The next event (comments skipped), as text without the trailing blank line.
    pub async fn next_event(&mut self) -> String {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let event: String = self.buffer.drain(..end + 2).collect();
                if !event.starts_with(':') {
                    return event.trim_end().to_string();
                }
                continue;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.stream.chunk()).await;
            let chunk = chunk
                .expect("an event within 10 s")
                .unwrap()
                .expect("the stream is open");
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// The next `message` event's JSON.
    pub async fn next_message(&mut self) -> Value {
        let event = self.next_event().await;
        serde_json::from_str(
            event
                .strip_prefix("event: message\ndata: ")
                .expect("a message event"),
        )
        .unwrap()
    }

    /// POSTs `body` to the endpoint; returns the status.
    pub async fn post(&self, body: &Value) -> u16 {
        let url = format!("{}{}", self.base, self.endpoint);
        http()
            .post(url)
            .header("content-type", "application/json")
            .json(body)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// POSTs a request and waits for the response event with its id (other events are kept
    /// in order and returned too).
    pub async fn request(&mut self, body: &Value) -> (Vec<Value>, Value) {
        assert_eq!(self.post(body).await, 202);
        let mut others = Vec::new();
        loop {
            let m = self.next_message().await;
            if m.get("id") == body.get("id")
                && (m.get("result").is_some() || m.get("error").is_some())
            {
                return (others, m);
            }
            others.push(m);
        }
    }
}

type WsStream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects to `ws://ADDR/ws`, offering subprotocol `mcp` when `mcp` is set. Returns the socket
/// and the subprotocol the server chose.
pub async fn ws_connect(bridge: &Bridge, mcp: bool) -> (WsStream, Option<String>) {
    let mut req = format!("ws://{}/ws", bridge.addr)
        .into_client_request()
        .unwrap();
    if mcp {
        req.headers_mut()
            .insert("sec-websocket-protocol", "mcp".parse().unwrap());
    }
    let (ws, resp) = tokio_tungstenite::connect_async(req)
        .await
        .expect("WebSocket handshake");
    let proto = resp
        .headers()
        .get("sec-websocket-protocol")
        .map(|v| v.to_str().unwrap().to_string());
    (ws, proto)
}

/// Sends a message and waits for the response with the same id.
pub async fn ws_request(ws: &mut WsStream, body: &Value) -> Value {
    ws.send(Frame::text(body.to_string())).await.unwrap();
    loop {
        let m = ws_next(ws).await;
        if m.get("id") == body.get("id") && (m.get("result").is_some() || m.get("error").is_some())
        {
            return m;
        }
    }
}

/// The next text frame's JSON (pings skipped).
pub async fn ws_next(ws: &mut WsStream) -> Value {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a frame within 10 s")
        {
            Some(Ok(Frame::Text(t))) => return serde_json::from_str(&t).unwrap(),
            Some(Ok(Frame::Ping(_) | Frame::Pong(_))) => continue,
            other => panic!("unexpected frame: {other:?}"),
        }
    }
}

fn base(bridge: &Bridge) -> String {
    format!("http://{}", bridge.addr)
}

#[tokio::test]
async fn legacy_sse_session_from_endpoint_event_to_close() {
    let bridge = Bridge::echo(&[], &[]).await;
    let mut s = SseSession::open(&base(&bridge), "/sse", &[]).await;
    assert!(
        s.endpoint.starts_with("/message?sessionId="),
        "{}",
        s.endpoint
    );
    let (_, init) = s.request(&initialize_body(json!(1), "2024-11-05")).await;
    assert_eq!(init["result"]["protocolVersion"], "2024-11-05");
    assert_eq!(
        s.post(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await,
        202
    );
    let (_, r) = s
        .request(&tool_call(json!("x"), "echo", json!({"message": "legacy"})))
        .await;
    assert_eq!(tool_text(&r), "legacy");
    // Bad input on the message endpoint.
    let url = format!("{}{}", base(&bridge), s.endpoint);
    let bad = http()
        .post(&url)
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let no_id = http()
        .post(format!("{}/message", base(&bridge)))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(no_id.status(), 400);
    let unknown = http()
        .post(format!("{}/message?sessionId=nope", base(&bridge)))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    // The session ends with its stream.
    drop(s);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let gone = http()
        .post(&url)
        .json(&json!({"jsonrpc": "2.0", "id": 9, "method": "ping"}))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);
}

#[tokio::test]
async fn legacy_sse_requests_before_initialize_and_session_ids_across_transports() {
    let bridge = Bridge::echo(&[], &[]).await;
    let mut s = SseSession::open(&base(&bridge), "/sse", &[]).await;
    let (_, early) = s
        .request(&tool_call(json!(1), "echo", json!({"message": "x"})))
        .await;
    assert_eq!(early["error"]["code"], -32600, "{early}");
    let (_, ping) = s
        .request(&json!({"jsonrpc": "2.0", "id": 2, "method": "ping"}))
        .await;
    assert_eq!(ping["result"], json!({}));
    let id = s.endpoint.split('=').nth(1).unwrap().to_string();
    let mcp = post_json(
        &http(),
        &bridge.url(),
        Some(&id),
        &json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}),
    )
    .await;
    assert_eq!(
        mcp.status(),
        404,
        "an SSE session id is not a Streamable HTTP session"
    );
}

#[tokio::test]
async fn endpoint_event_honours_base_path_and_trusted_forwarded_prefix() {
    let bridge = Bridge::echo(&["--base-path", "/tools/"], &[]).await;
    let s = SseSession::open(&base(&bridge), "/sse", &[("x-forwarded-prefix", "/evil")]).await;
    assert!(
        s.endpoint.starts_with("/tools/message?sessionId="),
        "untrusted prefix ignored: {}",
        s.endpoint
    );
    let bridge = Bridge::echo(&["--trust-forwarded-prefix"], &[]).await;
    let s = SseSession::open(&base(&bridge), "/sse", &[("x-forwarded-prefix", "/prefix")]).await;
    assert!(
        s.endpoint.starts_with("/prefix/message?sessionId="),
        "{}",
        s.endpoint
    );
}

#[tokio::test]
async fn websocket_session_with_and_without_subprotocol() {
    let bridge = Bridge::echo(&[], &[]).await;
    let (mut ws, proto) = ws_connect(&bridge, true).await;
    assert_eq!(
        proto.as_deref(),
        Some("mcp"),
        "the mcp subprotocol is echoed"
    );
    let init = ws_request(&mut ws, &initialize_body(json!(1), "2025-06-18")).await;
    assert_eq!(init["result"]["protocolVersion"], "2025-06-18");
    let r = ws_request(
        &mut ws,
        &tool_call(json!("a"), "echo", json!({"message": "over ws"})),
    )
    .await;
    assert_eq!(tool_text(&r), "over ws");
    ws.send(Frame::text("{not json")).await.unwrap();
    assert_eq!(ws_next(&mut ws).await["error"]["code"], -32700);
    let (mut plain, proto) = ws_connect(&bridge, false).await;
    assert_eq!(
        proto, None,
        "no subprotocol offered, none chosen, still accepted"
    );
    let init = ws_request(&mut plain, &initialize_body(json!(1), "2025-11-25")).await;
    assert!(init.get("result").is_some());
}

#[tokio::test]
async fn websocket_binary_frames_close_with_1003_and_pings_keep_alive() {
    let bridge = Bridge::echo(&["--sse-keep-alive", "100ms"], &[]).await;
    let (mut ws, _) = ws_connect(&bridge, true).await;
    let ping = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .unwrap();
    assert!(
        matches!(ping, Some(Ok(Frame::Ping(_)))),
        "the bridge pings: {ping:?}"
    );
    ws.send(Frame::binary(vec![1u8, 2, 3])).await.unwrap();
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .unwrap()
        {
            Some(Ok(Frame::Close(Some(frame)))) => {
                assert_eq!(u16::from(frame.code), 1003);
                break;
            }
            Some(Ok(Frame::Ping(_))) => continue,
            other => panic!("expected a 1003 close frame, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn websocket_requests_in_flight_finish_before_the_close_frame_on_shutdown() {
    let mut bridge = Bridge::echo(&[], &[]).await;
    let (mut ws, _) = ws_connect(&bridge, true).await;
    ws_request(&mut ws, &initialize_body(json!(1), "2025-11-25")).await;
    ws.send(Frame::text(
        tool_call(json!(7), "sleep", json!({"ms": 700})).to_string(),
    ))
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    signal(bridge.pid(), nix::sys::signal::Signal::SIGTERM);
    let mut answered = false;
    let code = loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .unwrap()
        {
            Some(Ok(Frame::Text(t))) => {
                let m: Value = serde_json::from_str(&t).unwrap();
                answered |= m["id"] == 7 && tool_text(&m) == "slept 700 ms";
            }
            Some(Ok(Frame::Close(Some(frame)))) => break u16::from(frame.code),
            Some(Ok(Frame::Ping(_))) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert!(
        answered,
        "the request in flight was answered before the connection closed"
    );
    assert_eq!(code, 1001);
    let status = tokio::task::spawn_blocking(move || bridge.terminate())
        .await
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn transports_can_be_switched_off() {
    let bridge = Bridge::echo(&["--transports", "streamable-http"], &[]).await;
    assert_eq!(
        http()
            .get(format!("{}/sse", base(&bridge)))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        http()
            .get(format!("{}/ws", base(&bridge)))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let health: Value = get_json(&bridge, "/healthz").await;
    assert_eq!(health["transports"], json!(["streamable-http"]));
    let bridge = Bridge::echo(&["--transports", "sse,ws"], &[]).await;
    let init = post_json(
        &http(),
        &bridge.url(),
        None,
        &initialize_body(json!(1), "2025-11-25"),
    )
    .await;
    assert_eq!(init.status(), 404);
    let health: Value = get_json(&bridge, "/healthz").await;
    assert_eq!(health["transports"], json!(["sse", "websocket"]));
}

/// Sends ids 1..=5 and "1".."5" concurrently over one connection and checks every answer.
async fn ws_burst(bridge: &Bridge, n: usize) -> usize {
    let (mut ws, _) = ws_connect(bridge, true).await;
    ws_request(&mut ws, &initialize_body(json!(0), "2025-11-25")).await;
    let ids: Vec<Value> = (1..=5)
        .flat_map(|i| [json!(i), json!(i.to_string())])
        .collect();
    for id in &ids {
        let msg = format!("ws {n} id {id}");
        ws.send(Frame::text(
            tool_call(id.clone(), "echo", json!({"message": msg})).to_string(),
        ))
        .await
        .unwrap();
    }
    let mut wrong = 0;
    for _ in &ids {
        let m = ws_next(&mut ws).await;
        if tool_text(&m) != format!("ws {n} id {}", m["id"]) {
            wrong += 1;
        }
    }
    wrong
}

async fn sse_burst(bridge: &Bridge, n: usize) -> usize {
    let mut s = SseSession::open(&base(bridge), "/sse", &[]).await;
    s.request(&initialize_body(json!(0), "2024-11-05")).await;
    let ids: Vec<Value> = (1..=5)
        .flat_map(|i| [json!(i), json!(i.to_string())])
        .collect();
    for id in &ids {
        let msg = format!("sse {n} id {id}");
        assert_eq!(
            s.post(&tool_call(id.clone(), "echo", json!({"message": msg})))
                .await,
            202
        );
    }
    let mut wrong = 0;
    for _ in &ids {
        let m = s.next_message().await;
        if tool_text(&m) != format!("sse {n} id {}", m["id"]) {
            wrong += 1;
        }
    }
    wrong
}

async fn http_burst(bridge: &Bridge, n: usize) -> usize {
    let (s, _) = Session::open(bridge, "2025-11-25").await;
    let ids: Vec<Value> = (1..=5)
        .flat_map(|i| [json!(i), json!(i.to_string())])
        .collect();
    let calls = ids.iter().map(|id| {
        let (s, id) = (s.clone(), id.clone());
        async move {
            let expected = format!("http {n} id {id}");
            let r = s
                .request(&tool_call(id.clone(), "echo", json!({"message": expected})))
                .await;
            usize::from(r["id"] != id || tool_text(&r) != expected)
        }
    });
    futures_util::future::join_all(calls)
        .await
        .into_iter()
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_sessions_over_three_transports_with_colliding_ids_are_never_misrouted() {
    let bridge = Bridge::echo(&[], &[]).await;
    let mut tasks = Vec::new();
    for n in 0..10 {
        tasks.push(futures_util::future::FutureExt::boxed(ws_burst(&bridge, n)));
        tasks.push(futures_util::future::FutureExt::boxed(sse_burst(
            &bridge, n,
        )));
        tasks.push(futures_util::future::FutureExt::boxed(http_burst(
            &bridge, n,
        )));
    }
    let misrouted: usize = futures_util::future::join_all(tasks)
        .await
        .into_iter()
        .sum();
    assert_eq!(
        misrouted, 0,
        "every response reached its own session with its own id"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_sse_reader_is_cut_off_and_does_not_delay_other_sessions() {
    let bridge = Bridge::echo(&["--session-outbox", "8"], &[]).await;
    // A legacy SSE session that never reads its stream after the endpoint event.
    let mut slow = SseSession::open(&base(&bridge), "/sse", &[]).await;
    slow.request(&initialize_body(json!(0), "2024-11-05")).await;
    let (noisy, _) = Session::open(&bridge, "2025-11-25").await;
    let big = "x".repeat(64 * 1024);
    let started = std::time::Instant::now();
    let flood = tokio::spawn(async move {
        for i in 0..300 {
            noisy
                .request(&tool_call(json!(i), "notify", json!({"message": big})))
                .await;
        }
    });
    let mut others = Vec::new();
    for n in 0..10 {
        let (s, _) = Session::open(&bridge, "2025-11-25").await;
        others.push(tokio::spawn(async move {
            let mut worst = Duration::ZERO;
            for i in 0..30 {
                let t = std::time::Instant::now();
                let r = s
                    .request(&tool_call(
                        json!(i),
                        "echo",
                        json!({"message": format!("{n}-{i}")}),
                    ))
                    .await;
                assert_eq!(tool_text(&r), format!("{n}-{i}"));
                worst = worst.max(t.elapsed());
            }
            worst
        }));
    }
    for t in others {
        let worst = t.await.unwrap();
        assert!(
            worst < Duration::from_secs(2),
            "a response took {worst:?} while one reader stalled"
        );
    }
    flood.await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(60));
    let text = metrics_text(&bridge).await;
    let cut: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("mcp_bridge_slow_consumers_disconnected_total "))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(cut >= 1, "the stalled SSE session was cut off: {text}");
    drop(slow);
}
