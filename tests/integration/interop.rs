//! Real peers we did not write: the official TypeScript SDK client and the official Python SDK
//! client against `@modelcontextprotocol/server-everything` (stdio) through the bridge.
//! Dependencies come from `scripts/setup-interop` (pinned by tests/interop lockfiles).

use crate::support::*;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

fn interop_dir() -> PathBuf {
    repo_root().join("tests/interop")
}

fn everything_child() -> Vec<String> {
    let entry =
        interop_dir().join("node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    assert!(
        entry.exists(),
        "{} is missing: run scripts/setup-interop first",
        entry.display()
    );
    vec!["node".into(), entry.display().to_string(), "stdio".into()]
}

/// Runs an interop client script to completion (it has its own 30 s timeout) and returns its
/// JSON summary line, failing with its stderr otherwise.
async fn run_client(program: PathBuf, script: &str, url: String) -> serde_json::Value {
    assert!(
        program.exists() || program.components().count() == 1,
        "{} is missing: run scripts/setup-interop first",
        program.display()
    );
    let script = interop_dir().join(script);
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(&program)
            .arg(&script)
            .arg(&url)
            .env("NO_PROXY", "127.0.0.1,localhost")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("client finishes within 60 s")
    .expect("client starts");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{} failed: {stderr}\n{stdout}",
        script.display()
    );
    serde_json::from_str(stdout.lines().last().unwrap_or("")).expect("summary line is JSON")
}

#[tokio::test]
async fn typescript_sdk_client_against_server_everything() {
    let bridge = Bridge::start(&[], &everything_child());
    bridge.wait_ready().await;
    let summary = run_client(PathBuf::from("node"), "ts_client.mjs", bridge.url()).await;
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
    let summary = run_client(python, "py_client.py", bridge.url()).await;
    assert_eq!(summary["ok"], true);
    assert!(summary["tools"].as_u64().unwrap() >= 10, "{summary}");
}
