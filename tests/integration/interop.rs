//! Real peers we did not write: the official TypeScript SDK client and the official Python SDK
//! client against `@modelcontextprotocol/server-everything` (stdio) through the bridge.
//! Dependencies come from `scripts/setup-interop` (pinned by tests/interop lockfiles).

use crate::support::*;
use std::path::PathBuf;
use std::process::Command;

#[tokio::test]
async fn typescript_sdk_client_against_server_everything() {
    let bridge = Bridge::start(&[], &everything_child());
    bridge.wait_ready().await;
    let summary = run_client(PathBuf::from("node"), "ts_client.mjs", &[&bridge.url()]).await;
    assert_eq!(summary["ok"], true);
    assert!(summary["tools"].as_u64().unwrap() >= 10, "{summary}");
    assert!(summary["prompts"].as_u64().unwrap() >= 1);
    assert!(summary["resources"].as_u64().unwrap() >= 1);
    assert!(Command::new("node").arg("--version").output().is_ok());
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
