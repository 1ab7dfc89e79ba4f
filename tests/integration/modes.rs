//! Per-session mode (`--isolation session`: a child per session, `--max-children`, idle reaping,
//! `--session-env`) and stateless mode (`--stateless`).

use crate::support::*;
use serde_json::json;
use std::time::{Duration, Instant};

async fn wait_gone(pid: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while process_alive(pid) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    !process_alive(pid)
}

#[tokio::test]
async fn each_session_gets_its_own_child_and_delete_stops_it() {
    let bridge = Bridge::echo(&["--isolation", "session"], &[]).await;
    let (a, init) = Session::open(&bridge, "2025-06-18").await;
    let (b, _) = Session::open(&bridge, "2025-11-25").await;
    assert_eq!(
        init["result"]["protocolVersion"], "2025-06-18",
        "the child negotiated it itself"
    );
    let (pa, pb) = (child_pid(&a).await, child_pid(&b).await);
    assert_ne!(pa, pb, "two sessions, two children");
    let del = a
        .http
        .delete(&a.url)
        .header("mcp-session-id", &a.id)
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 200);
    assert!(
        wait_gone(pa).await,
        "the deleted session's child {pa} stops"
    );
    assert!(process_alive(pb), "the other session's child lives on");
    assert_eq!(
        b.request(&tool_call(json!(1), "echo", json!({"message": "b"})))
            .await["result"]["content"][0]["text"],
        "b"
    );
}

#[tokio::test]
async fn idle_sessions_are_reaped_with_their_child() {
    let bridge = Bridge::echo(
        &["--isolation", "session", "--session-idle-timeout", "400ms"],
        &[],
    )
    .await;
    let (s, _) = Session::open(&bridge, "2025-11-25").await;
    let pid = child_pid(&s).await;
    assert!(
        wait_gone(pid).await,
        "the idle session's child {pid} is stopped"
    );
    assert_eq!(
        s.post(&json!({"jsonrpc": "2.0", "id": 2, "method": "ping"}))
            .await
            .status(),
        404
    );
}

#[tokio::test]
async fn shared_mode_reaps_idle_sessions_too() {
    let bridge = Bridge::echo(&["--session-idle-timeout", "300ms"], &[]).await;
    let (s, _) = Session::open(&bridge, "2025-11-25").await;
    let _stream = s.get("text/event-stream").await;
    let (idle, _) = Session::open(&bridge, "2025-11-25").await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        idle.post(&json!({"jsonrpc": "2.0", "id": 2, "method": "ping"}))
            .await
            .status(),
        404
    );
    assert_eq!(
        s.post(&json!({"jsonrpc": "2.0", "id": 2, "method": "ping"}))
            .await
            .status(),
        200,
        "an open GET stream keeps a session alive"
    );
}

#[tokio::test]
async fn session_env_maps_a_request_header_into_that_sessions_child() {
    let bridge = Bridge::echo(
        &[
            "--isolation",
            "session",
            "--session-env",
            "X-Api-Key=API_KEY",
        ],
        &[],
    )
    .await;
    let http = http();
    let resp = http
        .post(bridge.url())
        .header("content-type", "application/json")
        .header("x-api-key", "s3cret-value")
        .json(&initialize_body(json!(1), "2025-11-25"))
        .send()
        .await
        .unwrap();
    let id = session_id(&resp);
    let with_key = Session {
        http: http.clone(),
        url: bridge.url(),
        id,
    };
    let (without_key, _) = Session::open(&bridge, "2025-11-25").await;
    let env = |s: Session| async move {
        tool_text(
            &s.request(&tool_call(json!(1), "env", json!({"name": "API_KEY"})))
                .await,
        )
        .to_string()
    };
    assert_eq!(env(with_key).await, "s3cret-value");
    assert_eq!(env(without_key).await, "");
    assert!(
        !bridge.logs().join("\n").contains("s3cret-value"),
        "header values are never logged"
    );
}

#[tokio::test]
async fn max_children_refuses_initialize_with_503() {
    let bridge = Bridge::echo(&["--isolation", "session", "--max-children", "1"], &[]).await;
    let (first, _) = Session::open(&bridge, "2025-11-25").await;
    let pid = child_pid(&first).await;
    let resp = post_json(
        &http(),
        &bridge.url(),
        None,
        &initialize_body(json!(1), "2025-11-25"),
    )
    .await;
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().contains_key("retry-after"));
    let body: serde_json::Value = resp.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--max-children"),
        "{body}"
    );
    first
        .http
        .delete(&first.url)
        .header("mcp-session-id", &first.id)
        .send()
        .await
        .unwrap();
    assert!(wait_gone(pid).await);
    tokio::time::sleep(Duration::from_millis(100)).await;
    Session::open(&bridge, "2025-11-25").await;
}

#[tokio::test]
async fn stateless_mode_serves_requests_without_sessions() {
    let bridge = Bridge::echo(&["--stateless"], &[]).await;
    let http = http();
    let resp = post_json(
        &http,
        &bridge.url(),
        None,
        &initialize_body(json!(1), "2025-06-18"),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert!(
        !resp.headers().contains_key("mcp-session-id"),
        "stateless: no session id"
    );
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["result"]["protocolVersion"], "2025-06-18");
    let (_, r) = response_of(
        post_json(
            &http,
            &bridge.url(),
            None,
            &tool_call(json!(1), "echo", json!({"message": "nosession"})),
        )
        .await,
    )
    .await;
    assert_eq!(tool_text(&r), "nosession");
    let (_, r) = response_of(
        post_json(
            &http,
            &bridge.url(),
            Some("ignored"),
            &tool_call(json!(2), "echo", json!({"message": "x"})),
        )
        .await,
    )
    .await;
    assert_eq!(tool_text(&r), "x", "a session header is ignored");
    let note = post_json(
        &http,
        &bridge.url(),
        None,
        &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await;
    assert_eq!(note.status(), 202);
    let get = http
        .get(bridge.url())
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 405);
    assert_eq!(get.headers()["allow"], "POST");
}

#[tokio::test]
async fn per_session_mode_gives_sse_and_websocket_connections_their_own_children() {
    use crate::transports::{ws_connect, ws_request, SseSession};
    let bridge = Bridge::echo(&["--isolation", "session"], &[]).await;
    let mut sse = SseSession::open(&format!("http://{}", bridge.addr), "/sse", &[]).await;
    let (_, init) = sse.request(&initialize_body(json!(1), "2024-11-05")).await;
    assert_eq!(
        init["result"]["protocolVersion"], "2024-11-05",
        "passed through to the child"
    );
    let (_, r) = sse.request(&tool_call(json!(2), "pid", json!({}))).await;
    let sse_pid: u32 = tool_text(&r).parse().unwrap();
    let (mut ws, _) = ws_connect(&bridge, true).await;
    ws_request(&mut ws, &initialize_body(json!(1), "2025-11-25")).await;
    let ws_pid: u32 = tool_text(&ws_request(&mut ws, &tool_call(json!(2), "pid", json!({}))).await)
        .parse()
        .unwrap();
    assert_ne!(sse_pid, ws_pid);
    drop(sse);
    assert!(
        wait_gone(sse_pid).await,
        "closing the SSE stream stops its child"
    );
    drop(ws);
    assert!(
        wait_gone(ws_pid).await,
        "closing the WebSocket stops its child"
    );
}

#[tokio::test]
async fn per_session_children_are_respawned_with_the_sessions_own_initialize() {
    let bridge = Bridge::echo(&["--isolation", "session"], &[]).await;
    let (s, _) = Session::open(&bridge, "2025-06-18").await;
    let sub = json!({"jsonrpc": "2.0", "id": "s", "method": "resources/subscribe", "params": {"uri": "mem://mine"}});
    s.request(&sub).await;
    let old = child_pid(&s).await;
    signal(old, nix::sys::signal::Signal::SIGKILL);
    let deadline = Instant::now() + Duration::from_secs(10);
    let new = loop {
        let r = s.request(&tool_call(json!("p"), "pid", json!({}))).await;
        if let Some(text) = r["result"]["content"][0]["text"].as_str() {
            break text.parse::<u32>().unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "the session's child came back: {r}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_ne!(old, new);
    let touched = s
        .request(&tool_call(
            json!("t"),
            "touch",
            json!({"uri": "mem://mine"}),
        ))
        .await;
    assert_eq!(
        tool_text(&touched),
        "updated",
        "the subscription was restored in the new child"
    );

    let never = Bridge::echo(&["--isolation", "session", "--restart", "never"], &[]).await;
    let (s, _) = Session::open(&never, "2025-11-25").await;
    signal(child_pid(&s).await, nix::sys::signal::Signal::SIGKILL);
    let deadline = Instant::now() + Duration::from_secs(10);
    while s
        .post(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
        .await
        .status()
        != 404
    {
        assert!(
            Instant::now() < deadline,
            "without restarts the session ends"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn stateless_mode_still_serves_sse_and_websocket_sessions() {
    use crate::transports::{ws_connect, ws_request, SseSession};
    let bridge = Bridge::echo(&["--stateless"], &[]).await;
    let mut sse = SseSession::open(&format!("http://{}", bridge.addr), "/sse", &[]).await;
    sse.request(&initialize_body(json!(1), "2024-11-05")).await;
    let (_, r) = sse
        .request(&tool_call(json!(2), "echo", json!({"message": "sse"})))
        .await;
    assert_eq!(tool_text(&r), "sse");
    let (mut ws, _) = ws_connect(&bridge, true).await;
    ws_request(&mut ws, &initialize_body(json!(1), "2025-11-25")).await;
    assert_eq!(
        tool_text(
            &ws_request(
                &mut ws,
                &tool_call(json!(2), "echo", json!({"message": "ws"}))
            )
            .await
        ),
        "ws"
    );
}
