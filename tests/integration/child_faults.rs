//! A misbehaving child: garbage on stdout, over-long lines, exit at start-up, exit mid-session.
//! The daemon stays up and every request gets a clear answer.

use crate::support::*;
use serde_json::{json, Value};

#[tokio::test]
async fn garbage_and_over_long_lines_are_skipped_and_counted() {
    let bridge = Bridge::echo(
        &["--max-line-bytes", "1024"],
        &["--garbage", "--long-line", "5000"],
    )
    .await;
    let (s, _) = Session::open(&bridge, "2025-11-25").await;
    for i in 0..5 {
        let r = s
            .request(&tool_call(
                json!(i),
                "echo",
                json!({"message": format!("m{i}")}),
            ))
            .await;
        assert_eq!(tool_text(&r), format!("m{i}"));
    }
    let text = metrics_text(&bridge).await;
    let count = |reason: &str| -> u64 {
        let prefix = format!("mcp_bridge_child_lines_skipped_total{{reason=\"{reason}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .map_or(0, |n| n.parse().unwrap())
    };
    assert_eq!(count("too_long"), 1, "{text}");
    assert!(
        count("not_json") >= 6,
        "banner, invalid UTF-8 and 5 trailers: {text}"
    );
    assert_eq!(count("empty"), 1, "{text}");
    let logs = bridge.logs().join("\n");
    assert!(logs.contains("not a JSON-RPC message"), "skips are logged");
    assert!(logs.contains("over-long line from child skipped"));
}

#[tokio::test]
async fn child_that_exits_at_start_leaves_the_daemon_up_and_not_ready() {
    let bridge = Bridge::start(
        &["--restart", "never"],
        &echo_child(&["--exit-at-start", "7"]),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let reason = loop {
        let resp = http().get(bridge.at("/readyz")).send().await.unwrap();
        assert_eq!(resp.status(), 503);
        let body: Value = resp.json().await.unwrap();
        let reason = body["reason"].as_str().unwrap().to_string();
        if reason.contains("exited") || std::time::Instant::now() > deadline {
            break reason;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(reason.contains("exited with status 7"), "{reason}");
    let resp = post_json(
        &http(),
        &bridge.url(),
        None,
        &initialize_body(json!(1), "2025-11-25"),
    )
    .await;
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().contains_key("retry-after"));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["id"], 1);
    assert_eq!(body["error"]["code"], -32000);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("exited with status 7"),
        "{body}"
    );
    assert_eq!(
        http()
            .get(bridge.at("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let logs = bridge.logs().join("\n");
    assert!(
        logs.contains("fatal: exiting at start"),
        "child stderr is logged: {logs}"
    );
    assert!(logs.contains("child::stderr"));
}

#[tokio::test]
async fn child_exit_mid_session_fails_requests_with_the_exit_status() {
    // initialize + 2 answers, then the child exits with status 3.
    let bridge = Bridge::echo(&["--restart", "never"], &["--exit-after", "3"]).await;
    let (s, _) = Session::open(&bridge, "2025-11-25").await;
    let r = s
        .request(&tool_call(json!(1), "echo", json!({"message": "one"})))
        .await;
    assert_eq!(tool_text(&r), "one");
    let pending = s.spawn_request(tool_call(json!(2), "sleep", json!({"ms": 5000})));
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let last = s
        .request(&tool_call(json!(3), "echo", json!({"message": "two"})))
        .await;
    assert_eq!(
        tool_text(&last),
        "two",
        "the response written before exit is delivered"
    );
    let failed = pending.await.unwrap();
    assert_eq!(failed["error"]["code"], -32000);
    assert!(
        failed["error"]["message"]
            .as_str()
            .unwrap()
            .contains("exited with status 3"),
        "{failed}"
    );
    let after = s
        .request(&tool_call(json!(4), "echo", json!({"message": "x"})))
        .await;
    assert!(after["error"]["message"]
        .as_str()
        .unwrap()
        .contains("exited with status 3"));
    assert_eq!(
        http()
            .get(bridge.at("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        503
    );
    assert!(metrics_text(&bridge)
        .await
        .contains("mcp_bridge_child_up 0"));
}
