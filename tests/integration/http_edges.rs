//! Status codes and bodies of the Streamable HTTP endpoint for good and bad requests
//! (PROTOCOL.md section 9 item 3), checked with a plain HTTP client.

use crate::support::*;
use serde_json::{json, Value};

async fn error_of(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    let body: Value = resp.json().await.expect("error bodies are JSON");
    assert_eq!(ct.as_deref(), Some("application/json"));
    (status, body)
}

#[tokio::test]
async fn initialize_negotiates_version_per_session_and_issues_distinct_ids() {
    let bridge = Bridge::echo(&[], &[]).await;
    let (a, init_a) = Session::open(&bridge, "2025-06-18").await;
    let (b, init_b) = Session::open(&bridge, "1999-01-01").await;
    assert_ne!(a.id, b.id);
    assert_eq!(a.id.len(), 32);
    assert!(a.id.bytes().all(|c| (0x21..=0x7e).contains(&c)));
    assert_eq!(init_a["result"]["protocolVersion"], "2025-06-18");
    assert_eq!(init_b["result"]["protocolVersion"], "2025-11-25");
    assert_eq!(init_a["result"]["serverInfo"]["name"], "echo-server");
    assert_eq!(init_a["id"], 1);
}

#[tokio::test]
async fn request_ids_keep_their_json_type() {
    let bridge = Bridge::echo(&[], &[]).await;
    let (s, _) = Session::open(&bridge, "2025-11-25").await;
    let r = s
        .request(&tool_call(json!("7"), "echo", json!({"message": "str"})))
        .await;
    assert_eq!(r["id"], json!("7"));
    let r = s
        .request(&tool_call(json!(7), "echo", json!({"message": "num"})))
        .await;
    assert_eq!(r["id"], json!(7));
    assert_eq!(tool_text(&r), "num");
}

#[tokio::test]
async fn session_header_rules_400_404_and_delete() {
    let bridge = Bridge::echo(&[], &[]).await;
    let http = http();
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});
    let (status, body) = error_of(post_json(&http, &bridge.url(), None, &ping).await).await;
    assert_eq!(status, 400);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Mcp-Session-Id"));
    let (status, _) = error_of(post_json(&http, &bridge.url(), Some("nope"), &ping).await).await;
    assert_eq!(status, 404);

    let (s, _) = Session::open(&bridge, "2025-11-25").await;
    assert_eq!(s.request(&ping).await["result"], json!({}));
    let del = http
        .delete(bridge.url())
        .header("mcp-session-id", &s.id)
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 200);
    let (status, _) = error_of(s.post(&ping).await).await;
    assert_eq!(status, 404, "a deleted session is gone");
    let del = http
        .delete(bridge.url())
        .header("mcp-session-id", &s.id)
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 404);
    let get = http
        .get(bridge.url())
        .header("mcp-session-id", &s.id)
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 404);
    let del = http.delete(bridge.url()).send().await.unwrap();
    assert_eq!(del.status(), 400);
}

#[tokio::test]
async fn unsupported_protocol_version_header_is_400() {
    let bridge = Bridge::echo(&[], &[]).await;
    let (s, _) = Session::open(&bridge, "2025-11-25").await;
    let resp = s
        .post_raw(
            "application/json",
            &[("mcp-protocol-version", "2099-01-01")],
            r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#,
        )
        .await;
    let (status, body) = error_of(resp).await;
    assert_eq!(status, 400);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("2099-01-01"));
    let ok = s
        .post_raw(
            "application/json",
            &[("mcp-protocol-version", "2025-06-18")],
            r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#,
        )
        .await;
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn other_methods_get_405_with_allow() {
    let bridge = Bridge::echo(&[], &[]).await;
    let resp = http().put(bridge.url()).send().await.unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "GET, POST, DELETE");
    let resp = http().post(bridge.at("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), 405);
    let resp = http().get(bridge.at("/elsewhere")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn oversized_body_is_413_and_the_session_keeps_working() {
    let bridge = Bridge::echo(&["--max-body-bytes", "2048"], &[]).await;
    let (s, _) = Session::open(&bridge, "2025-11-25").await;
    let big = tool_call(json!(1), "echo", json!({"message": "x".repeat(4096)}));
    let (status, body) = error_of(s.post(&big).await).await;
    assert_eq!(status, 413);
    assert!(body["error"]["message"].as_str().unwrap().contains("2048"));
    // Chunked (no Content-Length) is cut off by the streaming limit as well.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        vec![Ok(vec![b' '; 1500]), Ok(vec![b' '; 1500])];
    let resp = s
        .post_raw(
            "application/json",
            &[],
            reqwest::Body::wrap_stream(futures_util::stream::iter(chunks)),
        )
        .await;
    assert_eq!(resp.status(), 413);
    let ok = s
        .request(&tool_call(json!(2), "echo", json!({"message": "small"})))
        .await;
    assert_eq!(tool_text(&ok), "small");
}

#[tokio::test]
async fn non_json_content_type_is_415() {
    let bridge = Bridge::echo(&[], &[]).await;
    let (s, _) = Session::open(&bridge, "2025-11-25").await;
    let resp = s
        .post_raw(
            "text/plain",
            &[],
            r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#,
        )
        .await;
    assert_eq!(error_of(resp).await.0, 415);
}

#[tokio::test]
async fn malformed_json_is_400_parse_error_and_invalid_jsonrpc_is_400_invalid_request() {
    let bridge = Bridge::echo(&[], &[]).await;
    let (s, _) = Session::open(&bridge, "2025-11-25").await;
    let raw = |body: &'static str| s.post_raw("application/json", &[], body);
    let (status, body) = error_of(raw("{not json").await).await;
    assert_eq!(
        (status, body["error"]["code"].as_i64()),
        (400, Some(-32700))
    );
    assert!(body.get("id").is_none());
    for bad in [
        r#"{"jsonrpc":"2.0","id":null,"method":"x"}"#,
        r#"{"id":1,"method":"x"}"#,
        r#"42"#,
    ] {
        let (status, body) = error_of(raw(bad).await).await;
        assert_eq!(
            (status, body["error"]["code"].as_i64()),
            (400, Some(-32600)),
            "{bad}"
        );
    }
    let no_session = http()
        .post(bridge.url())
        .header("content-type", "application/json")
        .body("{bad")
        .send()
        .await
        .unwrap();
    let (status, body) = error_of(no_session).await;
    assert_eq!(
        (status, body["error"]["code"].as_i64()),
        (400, Some(-32700)),
        "bad JSON without a session id is a parse error"
    );
}

#[tokio::test]
async fn notifications_and_responses_get_202_with_no_body() {
    let bridge = Bridge::echo(&[], &[]).await;
    let (s, _) = Session::open(&bridge, "2025-11-25").await;
    let resp = s
        .post(&json!({"jsonrpc": "2.0", "method": "notifications/roots/list_changed"}))
        .await;
    assert_eq!(resp.status(), 202);
    assert!(resp.bytes().await.unwrap().is_empty());
    let resp = s
        .post(&json!({"jsonrpc": "2.0", "id": 99, "result": {}}))
        .await;
    assert_eq!(resp.status(), 202);
}

#[tokio::test]
async fn post_without_event_stream_in_accept_still_gets_json() {
    let bridge = Bridge::echo(&[], &[]).await;
    let (s, _) = Session::open(&bridge, "2025-11-25").await;
    for accept in [None, Some("application/json"), Some("*/*")] {
        let headers: Vec<(&str, &str)> = accept.map(|a| ("accept", a)).into_iter().collect();
        let body =
            serde_json::to_vec(&tool_call(json!(1), "echo", json!({"message": "a"}))).unwrap();
        let resp = s.post_raw("application/json", &headers, body).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "application/json");
        assert_eq!(tool_text(&resp.json().await.unwrap()), "a");
    }
}

#[tokio::test]
async fn batches_only_from_2025_03_26_sessions() {
    let bridge = Bridge::echo(&[], &[]).await;
    let batch = json!([
        {"jsonrpc": "2.0", "id": "a", "method": "ping"},
        {"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": 1, "progress": 1}},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "echo", "arguments": {"message": "b"}}},
    ]);
    let (old, _) = Session::open(&bridge, "2025-03-26").await;
    let resp = old.request(&batch).await;
    let items = resp.as_array().expect("a batch response is an array");
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["id"], "a");
    assert_eq!(items[1]["id"], 2);
    assert_eq!(tool_text(&items[1]), "b");
    let only_notes = json!([{"jsonrpc": "2.0", "method": "notifications/roots/list_changed"}]);
    assert_eq!(old.post(&only_notes).await.status(), 202);

    let (new, _) = Session::open(&bridge, "2025-06-18").await;
    let (status, body) = error_of(new.post(&batch).await).await;
    assert_eq!(
        (status, body["error"]["code"].as_i64()),
        (400, Some(-32600))
    );
}

#[tokio::test]
async fn duplicate_in_flight_request_id_is_refused() {
    let bridge = Bridge::echo(&[], &[]).await;
    let (s, _) = Session::open(&bridge, "2025-11-25").await;
    let slow = s.spawn_request(tool_call(json!(5), "sleep", json!({"ms": 800})));
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let dup = s
        .request(&tool_call(json!(5), "echo", json!({"message": "dup"})))
        .await;
    assert_eq!(dup["error"]["code"], -32600);
    assert!(dup["error"]["message"]
        .as_str()
        .unwrap()
        .contains("already in flight"));
    let done = slow.await.unwrap();
    assert_eq!(tool_text(&done), "slept 800 ms");
}

#[tokio::test]
async fn request_timeout_yields_a_timeout_error() {
    let bridge = Bridge::echo(&["--request-timeout", "300ms"], &[]).await;
    let (s, _) = Session::open(&bridge, "2025-11-25").await;
    let r = s
        .request(&tool_call(json!(1), "sleep", json!({"ms": 1500})))
        .await;
    assert_eq!(r["error"]["code"], -32001);
    assert!(r["error"]["message"].as_str().unwrap().contains("300 ms"));
    let ok = s
        .request(&tool_call(json!(1), "echo", json!({"message": "after"})))
        .await;
    assert_eq!(
        tool_text(&ok),
        "after",
        "the id is free again after the timeout"
    );
}

#[tokio::test]
async fn health_ready_and_metrics_endpoints() {
    let bridge = Bridge::echo(&[], &[]).await;
    let health: Value = get_json(&bridge, "/healthz").await;
    assert_eq!(health["status"], "ok");
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));
    let ready = http().get(bridge.at("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let (_s, _) = Session::open(&bridge, "2025-11-25").await;
    let text = metrics_text(&bridge).await;
    assert!(text.contains("mcp_bridge_child_up 1"), "{text}");
    assert!(
        text.contains("mcp_bridge_sessions_active{transport=\"streamable-http\"} 1"),
        "{text}"
    );
    assert!(!text.contains("# EOF"), "classic text format by default");
    let openmetrics = http()
        .get(bridge.at("/metrics"))
        .header("accept", "application/openmetrics-text; version=1.0.0")
        .send()
        .await
        .unwrap();
    assert!(openmetrics.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    assert!(openmetrics
        .text()
        .await
        .unwrap()
        .trim_end()
        .ends_with("# EOF"));
}

#[tokio::test]
async fn child_environment_is_inherited_or_cleared_plus_env_flags() {
    let env_of = |s: Session, name: &'static str| async move {
        tool_text(
            &s.request(&tool_call(json!(1), "env", json!({"name": name})))
                .await,
        )
        .to_string()
    };
    let bridge = Bridge::echo(&["--env", "BRIDGE_TEST_VAR=a=b"], &[]).await;
    let (s, _) = Session::open(&bridge, "2025-11-25").await;
    assert_eq!(env_of(s.clone(), "BRIDGE_TEST_VAR").await, "a=b");
    assert_ne!(
        env_of(s, "PATH").await,
        "",
        "the bridge's environment is inherited"
    );

    let bridge = Bridge::echo(&["--clear-env", "--env", "ONLY=1"], &[]).await;
    let (s, _) = Session::open(&bridge, "2025-11-25").await;
    assert_eq!(env_of(s.clone(), "ONLY").await, "1");
    assert_eq!(
        env_of(s, "PATH").await,
        "",
        "--clear-env starts from an empty environment"
    );
}

#[tokio::test]
async fn the_mcp_path_is_configurable() {
    let bridge = Bridge::echo(&["--mcp-path", "/custom/mcp"], &[]).await;
    let resp = post_json(
        &http(),
        &bridge.at("/custom/mcp"),
        None,
        &initialize_body(json!(1), "2025-11-25"),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let resp = post_json(
        &http(),
        &bridge.url(),
        None,
        &initialize_body(json!(1), "2025-11-25"),
    )
    .await;
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn a_null_result_is_delivered_and_unreadable_params_get_invalid_params() {
    let bridge = Bridge::echo(&[], &[]).await;
    let (session, _) = Session::open(&bridge, "2025-11-25").await;
    let answer = session
        .request(&json!({"jsonrpc": "2.0", "id": 5, "method": "test/null-result"}))
        .await;
    assert_eq!(answer, json!({"jsonrpc": "2.0", "id": 5, "result": null}));

    // Params the router must read (a progress token), nested beyond serde_json's 128 levels.
    let deep = format!("{}1{}", "[".repeat(300), "]".repeat(300));
    let params = format!(
        r#"{{"name":"echo","arguments":{{"message":"x","deep":{deep}}},"_meta":{{"progressToken":7}}}}"#
    );
    let raw = format!(r#"{{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{params}}}"#);
    let resp = session.post_text(raw).await;
    let (_, answer) = response_of(resp).await;
    assert_eq!(answer["id"], 6);
    assert_eq!(answer["error"]["code"], -32602, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("recursion limit"),
        "{answer}"
    );
    // The session carries on.
    let ping = session
        .request(&json!({"jsonrpc": "2.0", "id": 7, "method": "ping"}))
        .await;
    assert_eq!(ping["result"], json!({}));
}

#[tokio::test]
async fn a_progress_token_spelled_with_escapes_is_still_rewritten() {
    let bridge = Bridge::echo(&[], &[]).await;
    let (session, _) = Session::open(&bridge, "2025-11-25").await;
    // `\u0054` is `T`: the child reads the key as progressToken, so the bridge must too.
    let raw = r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"sleep","arguments":{"ms":10},"_meta":{"progress\u0054oken":"tok-x"}}}"#;
    let resp = session.post_text(raw).await;
    let (related, answer) = response_of(resp).await;
    assert_eq!(answer["id"], 9, "{answer}");
    let progress: Vec<&Value> = related
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .collect();
    assert_eq!(progress.len(), 1, "{related:?}");
    assert_eq!(progress[0]["params"]["progressToken"], "tok-x");
}
