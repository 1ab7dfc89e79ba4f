//! Security at the HTTP edge, driven with curl: the Host and Origin allow-lists
//! (`--allowed-hosts`, `--allowed-origins`) and their defaults.

use crate::support::*;
use serde_json::json;
use std::process::Command;

/// POSTs an `initialize` to `url` with curl and the extra `headers`; returns the HTTP status and
/// the body.
fn curl_initialize(url: &str, headers: &[&str]) -> (u16, String) {
    let body = initialize_body(json!(1), "2025-11-25").to_string();
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "--max-time", "10", "-w", "\n%{http_code}"])
        .args(["-H", "content-type: application/json"])
        .args(["-H", "accept: application/json, text/event-stream"]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    let out = cmd.args(["-d", &body, url]).output().expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').expect("status line");
    (code.trim().parse().expect("a status"), body.to_string())
}

#[tokio::test]
async fn host_and_origin_allow_lists_replace_and_extend_the_defaults() {
    let defaults = Bridge::echo(&[], &[]).await;
    let url = defaults.url();
    assert_eq!(curl_initialize(&url, &[]).0, 200);
    let (status, body) = curl_initialize(&url, &["Host: mcp.example.com"]);
    assert_eq!(
        status, 421,
        "a loopback bind serves only loopback names: {body}"
    );
    assert!(
        body.contains("--allowed-hosts"),
        "the error says what to do: {body}"
    );
    let (status, body) = curl_initialize(&url, &["Origin: https://app.example.com"]);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("--allowed-origins"), "{body}");

    let listed = Bridge::echo(
        &[
            "--allowed-hosts",
            "mcp.example.com,127.0.0.1",
            "--allowed-origins",
            "https://app.example.com",
        ],
        &[],
    )
    .await;
    let url = listed.url();
    assert_eq!(curl_initialize(&url, &["Host: mcp.example.com"]).0, 200);
    assert_eq!(
        curl_initialize(&url, &["Host: mcp.example.com:8443"]).0,
        200
    );
    assert_eq!(
        curl_initialize(&url, &["Host: localhost"]).0,
        421,
        "the list replaces the loopback default"
    );
    assert_eq!(
        curl_initialize(&url, &["Origin: https://app.example.com"]).0,
        200
    );
    assert_eq!(
        curl_initialize(&url, &["Origin: https://evil.example.com"]).0,
        403
    );
    assert_eq!(
        curl_initialize(
            &url,
            &["Host: mcp.example.com", "Origin: https://mcp.example.com"]
        )
        .0,
        200,
        "same origin stays allowed"
    );
}
