//! End-to-end load benchmark of the bridge with the `echo_server` example as the child.
//!
//! Run: `cargo bench --bench load -- [--sessions S] [--concurrency C] [--seconds T]`
//! (defaults: 1 session, 32 requests in flight, 5 s). It builds the release `echo_server`
//! example, starts the release `mcp-bridge` on 127.0.0.1:0, opens S sessions, keeps C
//! `tools/call echo` requests in flight (spread over the sessions) for T seconds, verifies every
//! response (id and payload), and prints requests/s, p50/p90/p99/max latency and errors.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Args {
    sessions: usize,
    concurrency: usize,
    seconds: u64,
}

fn parse_args() -> Args {
    let mut args = Args {
        sessions: 1,
        concurrency: 32,
        seconds: 5,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .and_then(|v| v.parse().ok())
                .expect("flag needs a number")
        };
        match flag.as_str() {
            "--sessions" => args.sessions = value(),
            "--concurrency" => args.concurrency = value(),
            "--seconds" => args.seconds = value() as u64,
            _ => {} // cargo bench passes --bench
        }
    }
    args
}

/// Builds the release echo_server and returns its path.
fn echo_server() -> std::path::PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "--example", "echo_server", "--quiet"])
        .status()
        .expect("running cargo build");
    assert!(status.success(), "building echo_server failed");
    let bin = std::path::PathBuf::from(env!("CARGO_BIN_EXE_mcp-bridge"));
    bin.parent().unwrap().join("examples/echo_server")
}

/// Starts the bridge; returns the process and its MCP URL.
fn start_bridge(child: &std::path::Path) -> (std::process::Child, String) {
    let mut process = Command::new(env!("CARGO_BIN_EXE_mcp-bridge"))
        .args([
            "--port",
            "0",
            "--log-format",
            "json",
            "--log-level",
            "warn,mcp_bridge::app=info",
            "--",
        ])
        .arg(child)
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting mcp-bridge");
    let stderr = process.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let line = lines.next().expect("bridge exited early").unwrap();
        let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
        if v["message"] == "mcp-bridge listening" {
            break v["listen"].as_str().unwrap().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (process, format!("http://{addr}/mcp"))
}

async fn open_session(http: &reqwest::Client, url: &str) -> String {
    let init = json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"load","version":"1"}}});
    for _ in 0..200 {
        if let Ok(resp) = http
            .post(url)
            .header("content-type", "application/json")
            .json(&init)
            .send()
            .await
        {
            if resp.status() == 200 {
                return resp.headers()["mcp-session-id"]
                    .to_str()
                    .unwrap()
                    .to_string();
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("bridge never answered initialize");
}

/// One worker: sequential requests on `session` until `deadline`; returns latencies (us) and errors.
async fn worker(
    http: reqwest::Client,
    url: Arc<str>,
    session: String,
    worker: usize,
    deadline: Instant,
) -> (Vec<u32>, u64) {
    let (mut lat, mut errors, mut n) = (Vec::new(), 0u64, 0u64);
    while Instant::now() < deadline {
        n += 1;
        let msg = format!("w{worker}-{n}");
        // Ids are unique per session across workers (JSON-RPC forbids reusing an in-flight id).
        let id = (worker as u64) << 32 | n;
        let body = json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":"echo","arguments":{"message":msg}}});
        let start = Instant::now();
        let resp = http
            .post(&*url)
            .header("content-type", "application/json")
            .header("mcp-session-id", &session)
            .body(serde_json::to_vec(&body).unwrap())
            .send()
            .await;
        let ok = match resp {
            Ok(r) => r
                .json::<Value>()
                .await
                .is_ok_and(|v| v["id"] == id && v["result"]["content"][0]["text"] == msg.as_str()),
            Err(_) => false,
        };
        lat.push(start.elapsed().as_micros() as u32);
        errors += u64::from(!ok);
    }
    (lat, errors)
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx] as f64 / 1000.0
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let child = echo_server();
    let (mut bridge, url) = start_bridge(&child);
    let http = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(args.concurrency)
        .build()
        .unwrap();
    let mut sessions = Vec::new();
    for _ in 0..args.sessions {
        sessions.push(open_session(&http, &url).await);
    }
    let url: Arc<str> = url.into();
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let tasks: Vec<_> = (0..args.concurrency)
        .map(|w| {
            tokio::spawn(worker(
                http.clone(),
                url.clone(),
                sessions[w % sessions.len()].clone(),
                w,
                deadline,
            ))
        })
        .collect();
    let (mut all, mut errors) = (Vec::new(), 0);
    for t in tasks {
        let (lat, err) = t.await.unwrap();
        all.extend(lat);
        errors += err;
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_unstable();
    println!(
        "sessions={} concurrency={} seconds={:.1} requests={} req/s={:.0} p50={:.3}ms p90={:.3}ms p99={:.3}ms max={:.3}ms errors={}",
        args.sessions,
        args.concurrency,
        elapsed,
        all.len(),
        all.len() as f64 / elapsed,
        percentile(&all, 0.50),
        percentile(&all, 0.90),
        percentile(&all, 0.99),
        percentile(&all, 1.0),
        errors
    );
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(bridge.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = bridge.wait();
}
