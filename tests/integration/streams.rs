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

/// True when the stream ends cleanly within 5 s (whatever it sends before that).
async fn stream_ends(resp: &mut reqwest::Response) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(deadline, resp.chunk()).await {
            Ok(Ok(None)) => return true,
            Ok(Ok(Some(_))) => continue,
            _ => return false,
        }
    }
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
        assert!(
            event.starts_with("id: ") && event.contains("\nevent: message\ndata: {"),
            "{event:?}"
        );
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
    assert!(text.contains(": keep-alive"));
}

#[tokio::test]
async fn a_new_get_replaces_the_previous_stream() {
    let bridge = Bridge::echo(&[], &[]).await;
    let (s, _) = Session::open(&bridge, "2025-11-25").await;
    let mut old = open_get(&s).await;
    let mut new = open_get(&s).await;
    assert!(stream_ends(&mut old).await, "old stream closed cleanly");
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
    assert!(stream_ends(&mut stream).await, "DELETE ends the stream");
}

#[tokio::test]
async fn get_without_event_stream_accept_is_406() {
    let bridge = Bridge::echo(&[], &[]).await;
    let (s, _) = Session::open(&bridge, "2025-11-25").await;
    let resp = s.get("application/json").await;
    assert_eq!(resp.status(), 406);
}

/// The `id:` of the first event in `text` whose data contains `needle`.
fn id_of(text: &str, needle: &str) -> String {
    let event = text
        .split("\n\n")
        .find(|e| e.contains(needle))
        .unwrap_or_else(|| panic!("{needle} in {text:?}"));
    event
        .lines()
        .find_map(|l| l.strip_prefix("id: "))
        .expect("events carry ids")
        .to_string()
}

async fn resume(s: &Session, last: &str) -> reqwest::Response {
    s.http
        .get(&s.url)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &s.id)
        .header("last-event-id", last)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_dropped_post_stream_is_resumed_with_its_response_exactly_once() {
    let bridge = Bridge::echo(&[], &[]).await;
    let (s, _) = Session::open(&bridge, "2025-11-25").await;
    let call = json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
        "params": {"name": "sleep", "arguments": {"ms": 1000}, "_meta": {"progressToken": "t"}}});
    let mut post = s.post(&call).await;
    assert_eq!(post.headers()["content-type"], "text/event-stream");
    let text = read_until(&mut post, "notifications/progress").await;
    assert!(
        text.starts_with("id: ") && text.contains("retry: "),
        "2025-11-25 gets a priming event: {text:?}"
    );
    let progress_id = id_of(&text, "notifications/progress");
    drop(post); // the connection is lost mid-response
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let mut resumed = resume(&s, &progress_id).await;
    assert_eq!(resumed.status(), 200);
    let mut replay = String::new();
    while let Ok(Ok(Some(chunk))) =
        tokio::time::timeout(Duration::from_secs(5), resumed.chunk()).await
    {
        replay.push_str(&String::from_utf8_lossy(&chunk));
    }
    let messages = sse_messages(&replay);
    assert_eq!(
        messages.len(),
        1,
        "only what followed the last id, once: {replay:?}"
    );
    assert_eq!(messages[0]["id"], 5);
    assert_eq!(tool_text(&messages[0]), "slept 1000 ms");
    assert_eq!(
        resume(&s, "999-0").await.status(),
        400,
        "an unknown stream is refused"
    );
}

#[tokio::test]
async fn a_dropped_get_stream_is_resumed_from_the_last_event() {
    let bridge = Bridge::echo(&[], &[]).await;
    let (s, _) = Session::open(&bridge, "2025-06-18").await;
    let mut get = open_get(&s).await;
    s.request(&tool_call(json!(1), "notify", json!({"message": "first"})))
        .await;
    let text = read_until(&mut get, "first").await;
    assert!(
        !text.contains("retry:"),
        "no priming before 2025-11-25: {text:?}"
    );
    let first = id_of(&text, "first");
    drop(get);
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.request(&tool_call(json!(2), "notify", json!({"message": "second"})))
        .await;
    s.request(&tool_call(json!(3), "notify", json!({"message": "third"})))
        .await;
    let mut resumed = resume(&s, &first).await;
    let replay = read_until(&mut resumed, "third").await;
    let messages = sse_messages(&replay);
    let data: Vec<&str> = messages
        .iter()
        .filter_map(|m| m["params"]["data"].as_str())
        .collect();
    assert_eq!(
        data,
        vec!["second", "third"],
        "exactly the missed events, in order"
    );
}
