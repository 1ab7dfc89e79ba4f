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
