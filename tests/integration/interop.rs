//! Real peers we did not write: the official TypeScript SDK client and the official Python SDK
//! client against `@modelcontextprotocol/server-everything` (stdio) through the bridge.
//! Dependencies come from `scripts/setup-interop` (pinned by tests/interop lockfiles).

use crate::support::*;
use std::path::PathBuf;

#[tokio::test]
async fn typescript_sdk_client_against_server_everything() {
    let bridge = Bridge::start(&[], &everything_child());
    bridge.wait_ready().await;
    let summary = run_client(PathBuf::from("node"), "ts_client.mjs", &[&bridge.url()]).await;
    assert_eq!(summary["ok"], true);
    assert!(summary["tools"].as_u64().unwrap() >= 10, "{summary}");
    assert!(summary["prompts"].as_u64().unwrap() >= 1);
    assert!(summary["resources"].as_u64().unwrap() >= 1);
}

#[tokio::test]
async fn python_sdk_client_against_server_everything() {
    let bridge = Bridge::start(&[], &everything_child());
    bridge.wait_ready().await;
    let python = interop_dir().join(".venv/bin/python");
    let summary = run_client(python, "py_client.py", &[&bridge.url()]).await;
    assert_eq!(summary["ok"], true);
    assert!(summary["tools"].as_u64().unwrap() >= 10, "{summary}");
}

#[tokio::test]
async fn typescript_sdk_sse_and_websocket_transports_against_server_everything() {
    let bridge = Bridge::start(&[], &everything_child());
    bridge.wait_ready().await;
    let sse_url = format!("http://{}/sse", bridge.addr);
    let ws_url = format!("ws://{}/ws", bridge.addr);
    for (transport, url) in [("sse", &sse_url), ("ws", &ws_url)] {
        let s = run_client(
            PathBuf::from("node"),
            "ts_transports.mjs",
            &[transport, url],
        )
        .await;
        assert_eq!(s["ok"], true, "{s}");
        assert_eq!(
            s["progress"], 3,
            "{transport}: progress before the result: {s}"
        );
    }
}

#[tokio::test]
async fn python_sdk_sse_client_against_server_everything() {
    let bridge = Bridge::start(&[], &everything_child());
    bridge.wait_ready().await;
    let python = interop_dir().join(".venv/bin/python");
    let url = format!("http://{}/sse", bridge.addr);
    let s = run_client(python, "py_sse_client.py", &[&url]).await;
    assert_eq!(s["ok"], true, "{s}");
}

#[tokio::test]
async fn mcp_inspector_cli_over_sse_and_streamable_http() {
    let bridge = Bridge::start(&[], &everything_child());
    bridge.wait_ready().await;
    let script = repo_root().join("tests/conformance/inspector.sh");
    for (transport, url) in [
        ("sse", format!("http://{}/sse", bridge.addr)),
        ("http", bridge.url()),
    ] {
        let out = tokio::process::Command::new("bash")
            .arg(&script)
            .args([transport, &url])
            .kill_on_drop(true)
            .output()
            .await
            .expect("inspector.sh runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "inspector over {transport}: {}\n{stdout}",
            String::from_utf8_lossy(&out.stderr)
        );
        let s: serde_json::Value =
            serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap();
        assert_eq!(s["ok"], true, "{s}");
        assert!(s["echo"].as_str().unwrap_or("").contains("hi"), "{s}");
    }
}
