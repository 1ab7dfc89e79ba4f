//! `mcp-bridge probe`: a health check the binary runs against itself, for container
//! `HEALTHCHECK` lines and exec probes in images that have no curl.
//!
//! `mcp-bridge probe [--url URL] [--timeout DURATION] [--insecure]` GETs URL (default
//! `http://127.0.0.1:$MCP_BRIDGE_PORT/healthz`, port 8080 when unset) and exits 0 on a 2xx
//! answer, 1 otherwise with one line on stderr saying what happened.

use clap::Parser;
use std::time::Duration;

/// Flags of `mcp-bridge probe`.
#[derive(Parser, Debug)]
#[command(
    name = "mcp-bridge probe",
    bin_name = "mcp-bridge probe",
    about = "Check a running bridge: GET its /healthz (or --url) and exit 0 on a 2xx answer, 1 otherwise"
)]
pub struct ProbeCli {
    /// URL to check; defaults to http://127.0.0.1:$MCP_BRIDGE_PORT/healthz (port 8080 when unset).
    #[arg(long)]
    pub url: Option<String>,
    /// Give up after this long (e.g. 2s, 500ms).
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Accept any TLS certificate (for a bridge serving its own self-signed one on loopback).
    #[arg(long)]
    pub insecure: bool,
}

impl ProbeCli {
    /// The URL to check: `--url`, else `/healthz` on loopback at `MCP_BRIDGE_PORT` (8080 when
    /// unset or not a port number).
    pub fn target(&self) -> String {
        self.url.clone().unwrap_or_else(|| {
            let port = std::env::var("MCP_BRIDGE_PORT")
                .ok()
                .and_then(|p| p.parse::<u16>().ok())
                .unwrap_or(crate::cli::DEFAULT_PORT);
            format!("http://127.0.0.1:{port}/healthz")
        })
    }
}

/// Runs the probe. Returns `Ok(status line)` for a 2xx answer. Errors: the one-line reason
/// (unreachable, timed out, TLS failure, non-2xx status with the start of the body).
pub async fn run(cli: &ProbeCli) -> Result<String, String> {
    let url = cli.target();
    let client = reqwest::Client::builder()
        .timeout(cli.timeout)
        .danger_accept_invalid_certs(cli.insecure)
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    let resp = client
        .get(&url)
        .send()
        .await
        .map_err(|e| format!("{url}: {}", error_chain(&e)))?;
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    let head: String = body.chars().take(200).collect();
    match status.is_success() {
        true => Ok(format!("{url}: {status}")),
        false => Err(format!("{url}: {status} {}", head.trim())),
    }
}

/// `e` and its sources on one line.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
