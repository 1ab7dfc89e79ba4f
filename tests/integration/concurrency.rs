//! Many sessions sharing one child, all reusing the same request ids at once: every response
//! must reach the session that asked, with its own id (same JSON type) and its own payload.

use crate::support::*;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

const SESSIONS: usize = 50;
const IN_FLIGHT: usize = 20;
const ROUNDS: usize = 3;

/// Ids 1..=10 as numbers and "1".."10" as strings: 20 distinct ids, identical across sessions.
fn ids() -> Vec<Value> {
    (1..=IN_FLIGHT / 2)
        .flat_map(|n| [json!(n), json!(n.to_string())])
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_sessions_with_colliding_ids_get_only_their_own_responses() {
    let bridge = Bridge::echo(&[], &[]).await;
    let mut sessions = Vec::new();
    for _ in 0..SESSIONS {
        sessions.push(Session::open(&bridge, "2025-11-25").await.0);
    }
    let misrouted = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for (n, session) in sessions.iter().enumerate() {
        for id in ids() {
            let (session, misrouted) = (session.clone(), misrouted.clone());
            tasks.push(tokio::spawn(async move {
                for round in 0..ROUNDS {
                    let expected = format!("session {n} id {id} round {round}");
                    let resp = session
                        .request(&tool_call(id.clone(), "echo", json!({"message": expected})))
                        .await;
                    if resp["id"] != id || resp["result"]["content"][0]["text"] != expected.as_str()
                    {
                        misrouted.fetch_add(1, Ordering::Relaxed);
                        eprintln!("misrouted: sent id {id} expecting {expected:?}, got {resp}");
                    }
                }
            }));
        }
    }
    assert_eq!(tasks.len(), SESSIONS * IN_FLIGHT);
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(
        misrouted.load(Ordering::Relaxed),
        0,
        "every response reaches its own session"
    );
    let text = metrics_text(&bridge).await;
    assert!(text.contains("mcp_bridge_requests_in_flight 0"), "{text}");
}
