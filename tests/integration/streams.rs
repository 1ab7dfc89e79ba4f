//! GET streams: server notifications reach every session's stream, keep-alive comments flow,
//! and a new GET replaces the old one.

use crate::support::*;
use serde_json::json;
use std::time::Duration;

/// Reads from an SSE response until `needle` appears (or 10 s pass); returns all text read.
async fn read_until(resp: &mut reqwest::Response, needle: &str) -> String {
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !text.contains(needle) {
        match tokio::time::timeout_at(deadline, resp.chunk()).await {
            Ok(Ok(Some(chunk))) => text.push_str(&String::from_utf8_lossy(&chunk)),
            other => panic!("stream ended or timed out before {needle:?}: {other:?}; got {text:?}"),
        }
    }
    text
}

async fn open_get(s: &Session) -> reqwest::Response {
    let resp = s.get("text/event-stream").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    assert_eq!(resp.headers()["cache-control"], "no-cache");
    assert_eq!(resp.headers()["x-accel-buffering"], "no");
    resp
}

#[tokio::test]
async fn child_notifications_reach_every_sessions_get_stream() {
    let bridge = Bridge::echo(&[], &[]).await;
    let (a, _) = Session::open(&bridge, "2025-11-25").await;
    let (b, _) = Session::open(&bridge, "2025-06-18").await;
    let mut stream_a = open_get(&a).await;
    let mut stream_b = open_get(&b).await;
    let r = b
        .request(&tool_call(
            json!(1),
            "notify",
            json!({"message": "hello-all"}),
        ))
        .await;
    assert_eq!(tool_text(&r), "notified");
    for stream in [&mut stream_a, &mut stream_b] {
        let text = read_until(stream, "hello-all").await;
        let event = text
            .split("\n\n")
            .find(|e| e.contains("hello-all"))
            .unwrap();
        assert!(event.starts_with("event: message\ndata: {"), "{event:?}");
        let data: serde_json::Value =
            serde_json::from_str(event.split("data: ").nth(1).unwrap()).unwrap();
        assert_eq!(data["method"], "notifications/message");
        assert!(
            !text.contains("\"result\""),
            "responses never go to GET streams"
        );
    }
}

#[tokio::test]
async fn keep_alive_comments_flow_on_idle_streams() {
    let bridge = Bridge::echo(&["--sse-keep-alive", "150ms"], &[]).await;
    let (s, _) = Session::open(&bridge, "2025-11-25").await;
    let mut stream = open_get(&s).await;
    let text = read_until(&mut stream, ": keep-alive\n\n").await;
    assert!(text.starts_with(": keep-alive"));
}

#[tokio::test]
async fn a_new_get_replaces_the_previous_stream() {
    let bridge = Bridge::echo(&[], &[]).await;
    let (s, _) = Session::open(&bridge, "2025-11-25").await;
    let mut old = open_get(&s).await;
    let mut new = open_get(&s).await;
    let ended = tokio::time::timeout(Duration::from_secs(5), old.chunk())
        .await
        .expect("old stream ends");
    assert!(
        matches!(ended, Ok(None)),
        "old stream closed cleanly: {ended:?}"
    );
    s.request(&tool_call(json!(1), "notify", json!({"message": "to-new"})))
        .await;
    read_until(&mut new, "to-new").await;
}

#[tokio::test]
async fn delete_ends_the_sessions_get_stream() {
    let bridge = Bridge::echo(&[], &[]).await;
    let (s, _) = Session::open(&bridge, "2025-11-25").await;
    let mut stream = open_get(&s).await;
    let del = s
        .http
        .delete(&s.url)
        .header("mcp-session-id", &s.id)
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 200);
    let mut body = std::pin::pin!(async move { stream.chunk().await });
    let ended = tokio::time::timeout(Duration::from_secs(5), &mut body)
        .await
        .expect("stream ends");
    assert!(matches!(ended, Ok(None)));
}

#[tokio::test]
async fn get_without_event_stream_accept_is_406() {
    let bridge = Bridge::echo(&[], &[]).await;
    let (s, _) = Session::open(&bridge, "2025-11-25").await;
    let resp = s.get("application/json").await;
    assert_eq!(resp.status(), 406);
}
