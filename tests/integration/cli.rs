//! Command-line errors: exit code 64 and a one-line message; spawn failures exit 1.

use crate::support::*;
use std::process::Command;

fn run(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(bridge_bin()).args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn missing_child_command_exits_64_with_one_line() {
    let (code, err) = run(&["--port", "0"]);
    assert_eq!(code, Some(64));
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("missing child command"));
}

#[test]
fn bearer_tokens_cannot_be_passed_to_the_child() {
    let (code, err) = run(&[
        "--auth-token-file",
        "/dev/null",
        "--isolation",
        "session",
        "--session-env",
        "Authorization=TOKEN",
        "--",
        "x",
    ]);
    assert_eq!(code, Some(64), "{err}");
    assert!(
        err.contains("would hand the clients' bearer tokens"),
        "{err}"
    );
}

#[test]
fn bad_option_exits_64_with_one_line() {
    for args in [
        &["--no-such-flag", "--", "x"][..],
        &["--port", "http", "--", "x"],
        &["--env", "NOEQUALS", "--", "x"],
    ] {
        let (code, err) = run(args);
        assert_eq!(code, Some(64), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
    }
}

#[test]
fn options_can_come_from_the_environment() {
    let out = Command::new(bridge_bin())
        .env("MCP_BRIDGE_PORT", "notaport")
        .args(["--", "x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("notaport"));
}

#[test]
fn unknown_program_exits_1_naming_it() {
    let (code, err) = run(&["--port", "0", "--", "/nonexistent/mcp-server"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("/nonexistent/mcp-server"), "{err}");
}

/// The soft open-files limit of `pid`, from /proc.
fn soft_nofile(pid: u32) -> u64 {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("a Max open files line");
    line.split_whitespace().nth(3).unwrap().parse().unwrap()
}

#[test]
fn the_soft_open_files_limit_is_raised_to_the_hard_limit() {
    use std::io::{BufRead, BufReader};
    let hard = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .unwrap()
        .1;
    assert!(hard > 256, "the test needs a hard limit above 256");
    // prlimit(1) sets the limits and then runs the bridge in the same process.
    let mut child = Command::new("prlimit")
        .arg(format!("--nofile=256:{hard}"))
        .arg("--")
        .arg(bridge_bin())
        .args(["--port", "0", "--log-format", "json", "--"])
        .args(echo_child(&[]))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("running prlimit (util-linux)");
    let pid = child.id();
    let stderr = child.stderr.take().unwrap();
    let listening = BufReader::new(stderr)
        .lines()
        .map_while(Result::ok)
        .any(|l| l.contains("mcp-bridge listening"));
    let soft = soft_nofile(pid);
    signal(pid, nix::sys::signal::Signal::SIGTERM);
    let _ = child.wait();
    assert!(listening, "the bridge started");
    assert_eq!(soft, hard, "soft limit raised from 256 to the hard limit");
}

/// Threads of `pid` that are tokio runtime workers (tokio names them `tokio-rt-worker`).
fn runtime_workers(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.trim() == "tokio-rt-worker")
        .count()
}

#[tokio::test]
async fn worker_threads_sets_the_runtime_size_and_rejects_zero() {
    for n in [1, 3] {
        let bridge = Bridge::echo(&["--worker-threads", &n.to_string()], &[]).await;
        let (s, _) = Session::open(&bridge, "2025-11-25").await;
        let reply = s
            .request(&tool_call(
                serde_json::json!(1),
                "echo",
                serde_json::json!({"message": "hi"}),
            ))
            .await;
        assert_eq!(tool_text(&reply), "hi");
        assert_eq!(runtime_workers(bridge.pid()), n, "--worker-threads {n}");
    }
    let (code, err) = run(&["--worker-threads", "0", "--", "x"]);
    assert_eq!(code, Some(64));
    assert!(err.contains("--worker-threads must be at least 1"), "{err}");
}

#[tokio::test]
async fn probe_exits_0_on_a_healthy_bridge_and_1_with_the_reason_otherwise() {
    let bridge = Bridge::echo(&[], &[]).await;
    let probe = |args: &[&str], env: &[(&str, &str)]| {
        let out = Command::new(bridge_bin())
            .arg("probe")
            .args(args)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, out, _) = probe(&["--url", &bridge.at("/healthz")], &[]);
    assert_eq!(code, Some(0));
    assert!(out.contains("200 OK"), "{out}");
    let port = bridge.addr.port().to_string();
    let (code, out, err) = probe(&[], &[("MCP_BRIDGE_PORT", &port)]);
    assert_eq!(
        code,
        Some(0),
        "MCP_BRIDGE_PORT names the default target: {err}"
    );
    assert!(out.contains(&format!("127.0.0.1:{port}/healthz")), "{out}");

    let stopping = Bridge::start(
        &["--restart", "never"],
        &echo_child(&["--exit-at-start", "3"]),
    );
    let readyz = stopping.at("/readyz");
    let mut last = (None, String::new(), String::new());
    for _ in 0..100 {
        last = probe(&["--url", &readyz], &[]);
        if last.2.contains("exited with status 3") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(last.0, Some(1), "{last:?}");
    assert!(last.2.contains("503"), "{last:?}");
    let closed = format!("http://127.0.0.1:{}/healthz", free_port());
    let (code, _, err) = probe(&["--url", &closed, "--timeout", "2s"], &[]);
    assert_eq!(code, Some(1));
    assert!(
        err.starts_with("mcp-bridge probe: http://127.0.0.1:"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let (code, _, err) = probe(&["--bogus"], &[]);
    assert_eq!(code, Some(64), "{err}");
}
