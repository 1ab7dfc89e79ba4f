//! Every MCP feature across the bridge with the official TypeScript SDK client against
//! `@modelcontextprotocol/server-everything` (scenarios in tests/interop/ts_features.mjs):
//! progress, sampling, elicitation, subscriptions, cancellation and mixed load, in shared mode
//! (with `--forward sampling,elicitation`) and in per-session mode.

use crate::support::*;
use serde_json::Value;
use std::path::PathBuf;

async fn scenario(bridge: &Bridge, args: &[&str]) -> Value {
    scenario_env(bridge, args, &[]).await
}

async fn scenario_env(bridge: &Bridge, args: &[&str], env: &[(&str, &str)]) -> Value {
    let url = bridge.url();
    let mut all: Vec<&str> = vec![args[0], &url];
    all.extend_from_slice(&args[1..]);
    let summary = run_client_env(PathBuf::from("node"), "ts_features.mjs", &all, env).await;
    assert_eq!(summary["ok"], true, "{summary}");
    summary
}

async fn shared_bridge() -> Bridge {
    let bridge = Bridge::start(&["--forward", "sampling,elicitation"], &everything_child());
    bridge.wait_ready().await;
    bridge
}

#[tokio::test]
async fn progress_arrives_in_order_before_the_result() {
    let bridge = shared_bridge().await;
    let s = scenario(&bridge, &["progress"]).await;
    assert_eq!(s["progress"], 5, "{s}");
}

#[tokio::test]
async fn sampling_and_elicitation_reach_the_clients_handlers_and_return_to_the_child() {
    let bridge = shared_bridge().await;
    let s = scenario(&bridge, &["sampling"]).await;
    assert_eq!(s["handlerCalls"], 1, "{s}");
    scenario(&bridge, &["elicitation"]).await;
}

#[tokio::test]
async fn resource_updates_reach_only_the_subscribed_session() {
    let bridge = shared_bridge().await;
    scenario(&bridge, &["subscribe"]).await;
}

#[tokio::test]
async fn a_cancelled_call_is_cancelled_at_the_child_and_its_late_response_dropped() {
    let bridge = shared_bridge().await;
    let s = scenario(&bridge, &["cancel"]).await;
    assert_eq!(
        s["lateResponse"], false,
        "the bridge drops the response after cancellation: {s}"
    );
}

#[tokio::test]
async fn twenty_sessions_of_progress_each_get_only_their_own_notifications() {
    let bridge = shared_bridge().await;
    let s = scenario(&bridge, &["mixed", "20"]).await;
    assert_eq!(s["clients"], 20, "{s}");
}

#[tokio::test]
async fn shared_mode_never_misroutes_elicitations_under_load() {
    // With 20 sessions busy at once the shared child's elicitations cannot be attributed to one
    // session: the bridge must refuse them (the child gets an error), never misroute them.
    let bridge = shared_bridge().await;
    let s = scenario(&bridge, &["mixed-elicit", "20", "--allow-refused"]).await;
    assert_eq!(s["misrouted"], 0, "{s}");
    assert_eq!(
        s["elicited"].as_u64().unwrap() + s["refused"].as_u64().unwrap(),
        20,
        "{s}"
    );
}

#[tokio::test]
async fn per_session_mode_routes_every_progress_and_elicitation_to_its_own_session() {
    let bridge = Bridge::start(&["--isolation", "session"], &everything_child());
    bridge.wait_ready().await;
    // Each of the 8 initializes starts its own node child; on a loaded 2-core CI machine that
    // has taken more than 10 s, so this scenario gets 60 s overall (30 s to connect).
    let s = scenario_env(
        &bridge,
        &["mixed-elicit", "8"],
        &[("INTEROP_TIMEOUT_MS", "60000")],
    )
    .await;
    assert_eq!(
        (s["elicited"].as_u64(), s["refused"].as_u64()),
        (Some(8), Some(0)),
        "{s}"
    );
}

/// A loopback TCP proxy to `upstream` that cuts the first connection on which the server sends
/// a `notifications/progress`, right after forwarding it. Returns the proxy's address.
async fn cutting_proxy(upstream: std::net::SocketAddr) -> std::net::SocketAddr {
    use std::sync::atomic::{AtomicBool, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let cut_done = std::sync::Arc::new(AtomicBool::new(false));
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let cut_done = cut_done.clone();
            tokio::spawn(async move {
                let server = tokio::net::TcpStream::connect(upstream).await.unwrap();
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let up = tokio::spawn(async move { tokio::io::copy(&mut cr, &mut sw).await });
                let mut buf = vec![0u8; 16 * 1024];
                while let Ok(n) = sr.read(&mut buf).await {
                    if n == 0 || cw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                    let seen =
                        String::from_utf8_lossy(&buf[..n]).contains("notifications/progress");
                    if seen && !cut_done.swap(true, Ordering::SeqCst) {
                        break; // drop both halves: the connection is lost mid-response
                    }
                }
                up.abort();
            });
        }
    });
    addr
}

#[tokio::test]
async fn the_typescript_client_resumes_a_cut_post_stream_and_gets_every_message_once() {
    let bridge = shared_bridge().await;
    let proxy = cutting_proxy(bridge.addr).await;
    let url = format!("http://{proxy}/mcp");
    let s = run_client(
        PathBuf::from("node"),
        "ts_features.mjs",
        &["progress", &url],
    )
    .await;
    assert_eq!(s["ok"], true, "{s}");
    assert_eq!(
        s["progress"], 5,
        "every progress notification exactly once, then the result: {s}"
    );
    let logs = bridge.logs().join("\n");
    assert!(
        logs.contains("stream resumed"),
        "the client reconnected with Last-Event-ID: {logs}"
    );
}
