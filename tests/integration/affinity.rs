//! Several replicas behind a load balancer that hashes `Mcp-Session-Id`, as `mcp-bridge deploy
//! k8s` sets up ingress-nginx: a real nginx (Debian) with `hash $http_mcp_session_id consistent`
//! in front of three bridges. `initialize` has no session id, so it lands on one replica and the
//! session's follow-ups on the replica its id hashes to; with a shared
//! `MCP_BRIDGE_SESSION_SECRET` that replica adopts the session from its sealed id and keeps it
//! (src/session/seal.rs). Also: what adoption refuses (another principal, an ended session,
//! another secret) and what happens without a secret.

use crate::proxy::Nginx;
use crate::support::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

const SECRET: &str = "5f1c8a9e0b7d4c3a2f6e1d0c9b8a7f6e5d4c3b2a1f0e9d8c7b6a5f4e3d2c1b0a";

/// One request as nginx logged it.
#[derive(Debug)]
struct Row {
    method: String,
    /// `Mcp-Session-Id` the client sent ("" for none).
    sent: String,
    /// `Mcp-Session-Id` the replica answered with ("" for none).
    answered: String,
    /// The replica that served it (`127.0.0.1:PORT`).
    replica: String,
    status: String,
}

fn access_log(nginx: &Nginx) -> Vec<Row> {
    let text = std::fs::read_to_string(nginx.dir.join("access.log")).unwrap_or_default();
    text.lines()
        .map(|line| {
            let f: Vec<String> = line
                .split('\t')
                .map(|v| if v == "-" { "" } else { v }.to_string())
                .collect();
            assert_eq!(f.len(), 5, "access log line {line:?}");
            Row {
                method: f[0].clone(),
                sent: f[1].clone(),
                answered: f[2].clone(),
                replica: f[3].clone(),
                status: f[4].clone(),
            }
        })
        .collect()
}

async fn three_replicas(
    args: &[&str],
    env: &[&[(&str, &str)]; 3],
    child: &[String],
) -> (Vec<Bridge>, Nginx) {
    let bridges: Vec<Bridge> = env
        .iter()
        .map(|e| Bridge::start_with_env(args, child, e))
        .collect();
    for b in &bridges {
        b.wait_ready().await;
    }
    let ports: Vec<String> = bridges.iter().map(|b| b.addr.port().to_string()).collect();
    let nginx = Nginx::start_with(
        "affinity.conf.template",
        &[
            ("@UPSTREAM_1@", &ports[0]),
            ("@UPSTREAM_2@", &ports[1]),
            ("@UPSTREAM_3@", &ports[2]),
        ],
    )
    .await;
    (bridges, nginx)
}

/// `mcp_bridge_sessions_adopted_total` of one replica.
async fn adopted(bridge: &Bridge) -> u64 {
    metric(bridge, "mcp_bridge_sessions_adopted_total").await
}

/// Runs `n` (a multiple of 3) TypeScript SDK sessions, three at a time (initialize, lists, tool calls, a resource read,
/// a prompt, the GET stream, DELETE) through nginx in front of three replicas started with
/// `args` and a shared secret, and checks that every request after `initialize` stayed on one
/// replica and that each hand-over was an adoption.
async fn full_sdk_sessions(args: &[&str], n: usize) {
    let secret: &[(&str, &str)] = &[("MCP_BRIDGE_SESSION_SECRET", SECRET)];
    let (bridges, nginx) = three_replicas(args, &[secret; 3], &everything_child()).await;
    let url = nginx.url("/mcp");
    let client_args = [url.as_str()];
    // Three sessions at a time: concurrent enough to interleave on the replicas, light enough
    // not to starve the timing-sensitive tests running beside this one on a 2-core machine.
    for _ in 0..n.div_ceil(3) {
        let clients =
            (0..3).map(|_| run_client(PathBuf::from("node"), "ts_client.mjs", &client_args));
        for summary in futures_util::future::join_all(clients).await {
            assert_eq!(summary["ok"], true, "{summary}");
        }
    }
    let rows = access_log(&nginx);
    let mut opened_on: BTreeMap<&str, &str> = BTreeMap::new();
    let mut served_by: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for r in &rows {
        if r.sent.is_empty() && !r.answered.is_empty() {
            opened_on.insert(&r.answered, &r.replica);
        } else if !r.sent.is_empty() {
            served_by.entry(&r.sent).or_default().insert(&r.replica);
            assert!(
                r.status.starts_with('2'),
                "every request of a live session succeeds: {r:?}"
            );
        }
    }
    assert_eq!(
        opened_on.len(),
        n.div_ceil(3) * 3,
        "sessions opened: {rows:?}"
    );
    let mut handed_over = 0;
    for (id, opened) in &opened_on {
        let replicas = &served_by[id];
        assert_eq!(
            replicas.len(),
            1,
            "session {id} stays on one replica after initialize: {replicas:?}"
        );
        assert!(
            rows.iter().any(|r| r.sent == *id && r.method == "DELETE"),
            "the SDK ended session {id}"
        );
        handed_over += usize::from(!replicas.contains(opened));
    }
    let mut total = 0;
    for b in &bridges {
        total += adopted(b).await;
    }
    assert_eq!(
        total, handed_over as u64,
        "each session whose follow-ups hash to another replica is adopted there once"
    );
    assert!(handed_over > 0, "some session was handed over: {rows:?}");
}

#[tokio::test]
async fn full_sdk_sessions_stay_on_one_replica_behind_nginx_hashing_the_session_id() {
    // With three replicas, (1/3)^9 that no session is handed over.
    full_sdk_sessions(&[], 9).await;
}

#[tokio::test]
async fn per_session_children_are_started_by_the_adopting_replica() {
    // Each adopted session starts a second child (the first idles on the initialize replica
    // until the adoption window ends); (1/3)^9 that none is handed over.
    full_sdk_sessions(&["--isolation", "session"], 9).await;
}

#[tokio::test]
async fn without_a_shared_secret_a_follow_up_on_another_replica_is_404() {
    let (_bridges, nginx) = three_replicas(&[], &[&[], &[], &[]], &echo_child(&[])).await;
    let http = http();
    let url = nginx.url("/mcp");
    // initialize always hashes "" to the same replica; a session whose id hashes elsewhere
    // shows what plain hashing does to it. Bounded: (1/3)^30 that none does.
    for _ in 0..30 {
        let resp = post_json(&http, &url, None, &initialize_body(json!(1), "2025-11-25")).await;
        assert_eq!(resp.status(), 200);
        let id = session_id(&resp);
        let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let status = post_json(&http, &url, Some(&id), &note).await.status();
        // nginx logs a request just after answering it: wait for both lines.
        let mut rows = access_log(&nginx);
        for _ in 0..100 {
            if rows.iter().any(|r| r.sent == id) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            rows = access_log(&nginx);
        }
        let opened = rows.iter().find(|r| r.answered == id).unwrap();
        let followed = rows.iter().rev().find(|r| r.sent == id).unwrap();
        if opened.replica != followed.replica {
            assert_eq!(status, 404, "another replica does not know the session");
            return;
        }
        assert_eq!(status, 202);
    }
    panic!("no session id hashed away from the initialize replica in 30 tries");
}

#[tokio::test]
async fn adoption_keeps_the_protocol_version_and_principal_and_refuses_the_rest() {
    let tokens = Scratch::new("adopt-tokens");
    std::fs::write(tokens.file("tokens"), "token-alice\ntoken-bob\n").unwrap();
    let tokens_path = tokens.file("tokens").display().to_string();
    let args = ["--auth-token-file", tokens_path.as_str()];
    let env = [("MCP_BRIDGE_SESSION_SECRET", SECRET)];
    let child = echo_child(&[]);
    let a = Bridge::start_with_env(&args, &child, &env);
    let b = Bridge::start_with_env(&args, &child, &env);
    let other_secret = [("MCP_BRIDGE_SESSION_SECRET", &SECRET[1..])];
    let c = Bridge::start_with_env(&args, &child, &other_secret);
    for x in [&a, &b, &c] {
        x.wait_ready().await;
    }
    let http = http();
    let send = |url: String, token: &'static str, id: Option<String>, body: Value| {
        let http = http.clone();
        async move {
            let mut req = http
                .post(url)
                .bearer_auth(token)
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .body(body.to_string());
            if let Some(id) = id {
                req = req.header("mcp-session-id", id);
            }
            req.send().await.unwrap()
        }
    };
    let resp = send(
        a.url(),
        "token-alice",
        None,
        initialize_body(json!(1), "2025-03-26"),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let id = session_id(&resp);
    assert_eq!(id.len(), 76, "a sealed id: {id}");
    let call = tool_call(json!(2), "echo", json!({"message": "on b"}));
    // Another principal cannot have it adopted, nor can a replica with another secret.
    let bob = send(b.url(), "token-bob", Some(id.clone()), call.clone()).await;
    assert_eq!(bob.status(), 404);
    let elsewhere = send(c.url(), "token-alice", Some(id.clone()), call.clone()).await;
    assert_eq!(elsewhere.status(), 404);
    // The principal that opened it can, on a replica sharing the secret.
    let resp = send(b.url(), "token-alice", Some(id.clone()), call.clone()).await;
    assert_eq!(resp.status(), 200);
    let answer = response_of(resp).await.1;
    assert_eq!(tool_text(&answer), "on b");
    assert_eq!(adopted(&b).await, 1);
    // The adopted session kept the negotiated version: only 2025-03-26 sessions may batch.
    let batch = json!([tool_call(json!(3), "echo", json!({"message": "batched"}))]);
    let resp = send(b.url(), "token-alice", Some(id.clone()), batch).await;
    assert_eq!(resp.status(), 200);
    let answers: Value = resp.json().await.unwrap();
    assert_eq!(tool_text(&answers[0]), "batched", "{answers}");
    // The secret is the replicas', not the child's.
    let env_call = tool_call(
        json!(4),
        "env",
        json!({"name": "MCP_BRIDGE_SESSION_SECRET"}),
    );
    let resp = send(b.url(), "token-alice", Some(id.clone()), env_call).await;
    assert_eq!(tool_text(&response_of(resp).await.1), "");
    // Ended here, it is not adopted again.
    let deleted = http
        .delete(b.url())
        .bearer_auth("token-alice")
        .header("mcp-session-id", &id)
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success(), "{}", deleted.status());
    let again = send(b.url(), "token-alice", Some(id.clone()), call.clone()).await;
    assert_eq!(again.status(), 404);
    assert_eq!(adopted(&b).await, 1);
    // A random id is never adopted.
    let random = send(b.url(), "token-alice", Some("0".repeat(76)), call).await;
    assert_eq!(random.status(), 404);
}

#[test]
fn a_short_session_secret_is_refused_at_start() {
    let out = std::process::Command::new(bridge_bin())
        .env("MCP_BRIDGE_SESSION_SECRET", "too-short")
        .args(["--port", "0", "--", "true"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(
        stderr.contains("MCP_BRIDGE_SESSION_SECRET is 9 bytes; it must be at least 32"),
        "{stderr}"
    );
}

/// A gauge or counter without labels from a replica's `/metrics`.
async fn metric(bridge: &Bridge, name: &str) -> u64 {
    let text = metrics_text(bridge).await;
    let prefix = format!("{name} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {name} in {text}"))
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn concurrent_first_requests_adopt_a_per_session_session_once() {
    let env = [("MCP_BRIDGE_SESSION_SECRET", SECRET)];
    let args = ["--isolation", "session"];
    let child = echo_child(&[]);
    let a = Bridge::start_with_env(&args, &child, &env);
    let b = Bridge::start_with_env(&args, &child, &env);
    a.wait_ready().await;
    b.wait_ready().await;
    let http = http();
    let resp = post_json(
        &http,
        &a.url(),
        None,
        &initialize_body(json!(1), "2025-11-25"),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let id = session_id(&resp);
    // Five requests reach the other replica at once, as a client's POST and GET can.
    let calls = (0..5).map(|i| {
        let (http, url, id) = (http.clone(), b.url(), id.clone());
        async move {
            let call = tool_call(json!(i), "echo", json!({"message": format!("c{i}")}));
            let resp = post_json(&http, &url, Some(&id), &call).await;
            assert_eq!(resp.status(), 200);
            tool_text(&response_of(resp).await.1).to_string()
        }
    });
    let answers = futures_util::future::join_all(calls).await;
    assert_eq!(answers, ["c0", "c1", "c2", "c3", "c4"]);
    assert_eq!(adopted(&b).await, 1);
    assert_eq!(
        metric(&b, "mcp_bridge_children_running").await,
        1,
        "one child for the adopted session, none left over"
    );
}
