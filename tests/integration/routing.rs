//! Routing of what is not a plain request/response: SSE POST responses, per-session log levels,
//! cancellation in both directions as the child sees it, and roots answered by the bridge.

use crate::support::*;
use serde_json::json;
use std::time::Duration;

async fn cancellations(s: &Session) -> String {
    tool_text(
        &s.request(&tool_call(json!("c"), "cancellations", json!({})))
            .await,
    )
    .to_string()
}

#[tokio::test]
async fn a_fast_answer_is_json_a_slow_or_chatty_one_an_sse_stream() {
    let bridge = Bridge::echo(&[], &[]).await;
    let (s, _) = Session::open(&bridge, "2025-11-25").await;
    let fast = s
        .post(&tool_call(json!(1), "echo", json!({"message": "quick"})))
        .await;
    assert_eq!(
        fast.headers()["content-type"],
        "application/json",
        "auto mode: a response within the hold goes out as JSON"
    );
    assert_eq!(tool_text(&response_of(fast).await.1), "quick");

    let slow = s
        .post(&tool_call(json!(2), "sleep", json!({"ms": 300})))
        .await;
    assert_eq!(slow.headers()["content-type"], "text/event-stream");
    let text = slow.text().await.unwrap();
    assert!(
        text.starts_with("id: ") && text.contains("retry: 1000"),
        "a 2025-11-25 stream starts with its priming event: {text:?}"
    );
    let messages = sse_messages(&text);
    assert_eq!(messages.len(), 1, "{text}");
    assert_eq!(messages[0]["id"], 2);

    // No sleep: the progress notification and the response reach the bridge together.
    let mut call = tool_call(json!(3), "sleep", json!({"ms": 0}));
    call["params"]["_meta"] = json!({"progressToken": "p"});
    let chatty = s.post(&call).await;
    assert_eq!(
        chatty.headers()["content-type"],
        "text/event-stream",
        "a related message starts the stream at once"
    );
    let (events, last) = response_of(chatty).await;
    assert_eq!(events[0]["method"], "notifications/progress");
    assert_eq!(last["id"], 3);

    let sse_only = s
        .post_raw(
            "application/json",
            &[("accept", "text/event-stream")],
            tool_call(json!(4), "echo", json!({"message": "s"})).to_string(),
        )
        .await;
    assert_eq!(
        sse_only.headers()["content-type"],
        "text/event-stream",
        "a client that does not take JSON gets a stream"
    );
    assert_eq!(tool_text(&response_of(sse_only).await.1), "s");

    let ping = s
        .post(&json!({"jsonrpc": "2.0", "id": 5, "method": "ping"}))
        .await;
    assert_eq!(ping.headers()["content-type"], "application/json");

    let sse_bridge = Bridge::echo(&["--response-mode", "sse"], &[]).await;
    let (s, _) = Session::open(&sse_bridge, "2025-03-26").await;
    let resp = s
        .post(&tool_call(json!(1), "echo", json!({"message": "via sse"})))
        .await;
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let (events, last) = response_of(resp).await;
    assert!(events.is_empty());
    assert_eq!(tool_text(&last), "via sse");

    let json_bridge = Bridge::echo(&["--response-mode", "json"], &[]).await;
    let (s, _) = Session::open(&json_bridge, "2025-11-25").await;
    let resp = s
        .post(&tool_call(json!(1), "sleep", json!({"ms": 100})))
        .await;
    assert_eq!(resp.headers()["content-type"], "application/json");
}

#[tokio::test]
async fn log_messages_are_filtered_by_each_sessions_level() {
    let bridge = Bridge::echo(&["--sse-keep-alive", "100ms"], &[]).await;
    let (quiet, _) = Session::open(&bridge, "2025-11-25").await;
    let (chatty, _) = Session::open(&bridge, "2025-11-25").await;
    let set = |level: &str| json!({"jsonrpc": "2.0", "id": "lvl", "method": "logging/setLevel", "params": {"level": level}});
    assert_eq!(quiet.request(&set("error")).await["result"], json!({}));
    assert_eq!(chatty.request(&set("info")).await["result"], json!({}));
    let bad = chatty.request(&set("loud")).await;
    assert_eq!(bad["error"]["code"], -32602);
    let mut quiet_stream = quiet.get("text/event-stream").await;
    let mut chatty_stream = chatty.get("text/event-stream").await;
    chatty
        .request(&tool_call(
            json!(1),
            "notify",
            json!({"message": "info-level-note"}),
        ))
        .await;
    let mut seen = String::new();
    while !seen.contains("info-level-note") {
        let chunk = tokio::time::timeout(Duration::from_secs(5), chatty_stream.chunk())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    let mut quiet_seen = String::new();
    let until = tokio::time::Instant::now() + Duration::from_millis(600);
    while let Ok(Ok(Some(chunk))) = tokio::time::timeout_at(until, quiet_stream.chunk()).await {
        quiet_seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(
        quiet_seen.contains(": keep-alive"),
        "the quiet stream is alive: {quiet_seen:?}"
    );
    assert!(
        !quiet_seen.contains("info-level-note"),
        "an info message is below the error level"
    );
}

#[tokio::test]
async fn client_cancellation_reaches_the_child_and_the_request_ends() {
    let bridge = Bridge::echo(&[], &[]).await;
    let (s, _) = Session::open(&bridge, "2025-11-25").await;
    let call = tokio::spawn({
        let s = s.clone();
        async move {
            s.post(&tool_call(json!(9), "sleep", json!({"ms": 3000})))
                .await
                .text()
                .await
                .unwrap()
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let note = json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 9, "reason": "test"}});
    assert_eq!(s.post(&note).await.status(), 202);
    let body = tokio::time::timeout(Duration::from_secs(2), call)
        .await
        .expect("the cancelled call ends at once")
        .unwrap();
    assert!(
        sse_messages(&body).is_empty(),
        "a cancelled request gets no response: {body:?}"
    );
    assert_eq!(
        cancellations(&s).await,
        "1",
        "the child saw notifications/cancelled for its sleep"
    );
}

#[tokio::test]
async fn delete_and_request_timeout_cancel_in_flight_work_at_the_child() {
    let bridge = Bridge::echo(&["--request-timeout", "400ms"], &[]).await;
    let (a, _) = Session::open(&bridge, "2025-11-25").await;
    let (b, _) = Session::open(&bridge, "2025-11-25").await;
    let _pending = a.spawn_request(tool_call(json!(1), "sleep", json!({"ms": 5000})));
    tokio::time::sleep(Duration::from_millis(200)).await;
    a.http
        .delete(&a.url)
        .header("mcp-session-id", &a.id)
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        cancellations(&b).await,
        "1",
        "DELETE cancelled the session's sleep at the child"
    );
    let timed_out = b
        .request(&tool_call(json!(2), "sleep", json!({"ms": 5000})))
        .await;
    assert_eq!(timed_out["error"]["code"], -32001);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        cancellations(&b).await,
        "2",
        "the timeout cancelled the sleep at the child"
    );
}

#[tokio::test]
async fn roots_are_answered_by_the_bridge() {
    let dir = std::env::temp_dir().join(format!("mcp-bridge-roots-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let root = dir.display().to_string();
    let bridge = Bridge::start(&["--roots", &root], &everything_child());
    bridge.wait_ready().await;
    let (s, _) = Session::open(&bridge, "2025-11-25").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let text = loop {
        let r = s
            .request(&tool_call(json!(1), "get-roots-list", json!({})))
            .await;
        let text = r["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or("")
            .to_string();
        if text.contains(&root) || tokio::time::Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(text.contains(&format!("file://{root}")), "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn tasks_belong_to_the_session_that_created_them() {
    let bridge = Bridge::start(&[], &everything_child());
    bridge.wait_ready().await;
    let (a, _) = Session::open(&bridge, "2025-11-25").await;
    let (b, _) = Session::open(&bridge, "2025-11-25").await;
    let create = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "simulate-research-query", "arguments": {"topic": "bridges"}, "task": {"ttl": 60000}}});
    let created = a.request(&create).await;
    let task_id = created["result"]["task"]["taskId"]
        .as_str()
        .unwrap_or_else(|| panic!("{created}"))
        .to_string();
    let list = |s: Session| async move {
        s.request(&json!({"jsonrpc": "2.0", "id": 2, "method": "tasks/list"}))
            .await
    };
    let mine = list(a.clone()).await;
    assert!(
        mine["result"]["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["taskId"] == task_id.as_str()),
        "{mine}"
    );
    let theirs = list(b.clone()).await;
    assert_eq!(
        theirs["result"]["tasks"],
        json!([]),
        "another session's tasks are hidden"
    );
    let get =
        json!({"jsonrpc": "2.0", "id": 3, "method": "tasks/get", "params": {"taskId": task_id}});
    assert_eq!(
        b.request(&get).await["error"]["code"],
        -32602,
        "another session cannot read the task"
    );
    assert_eq!(a.request(&get).await["result"]["taskId"], task_id.as_str());
}
