//! Faults: the child is killed mid-load and restarted transparently, a child that keeps dying
//! makes the bridge give up, misbehaving children stay within a memory bound, abandoned sessions
//! are reaped, and SIGTERM under load answers everything.

use crate::support::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Peak resident memory of `pid` in KiB (VmHWM).
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Current resident memory of `pid` in KiB (VmRSS).
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_the_child_fails_in_flight_calls_at_once_and_sessions_survive_the_restart() {
    let bridge = Bridge::echo(&["--sse-keep-alive", "200ms"], &[]).await;
    let (watcher, _) = Session::open(&bridge, "2025-11-25").await;
    let sub = json!({"jsonrpc": "2.0", "id": "s", "method": "resources/subscribe", "params": {"uri": "mem://x"}});
    assert_eq!(watcher.request(&sub).await["result"], json!({}));
    let mut stream = watcher.get("text/event-stream").await;
    let mut sessions = Vec::new();
    for _ in 0..4 {
        sessions.push(Session::open(&bridge, "2025-11-25").await.0);
    }
    let old = child_pid(&sessions[0]).await;
    let calls: Vec<_> = (0..20)
        .map(|i| sessions[i % 4].spawn_request(tool_call(json!(i), "sleep", json!({"ms": 10000}))))
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let killed = Instant::now();
    signal(old, nix::sys::signal::Signal::SIGKILL);
    for call in calls {
        let r = call.await.unwrap();
        assert!(
            killed.elapsed() < Duration::from_secs(1),
            "errors arrive within 1 s"
        );
        let text = r["error"]["message"]
            .as_str()
            .unwrap_or_else(|| panic!("an error: {r}"));
        assert!(
            text.contains("killed by signal 9"),
            "the error names the crash: {text}"
        );
    }
    bridge.wait_ready().await;
    let new = child_pid(&sessions[1]).await;
    assert_ne!(old, new, "a new child runs");
    for s in &sessions {
        assert_eq!(
            tool_text(
                &s.request(&tool_call(json!("e"), "echo", json!({"message": "again"})))
                    .await
            ),
            "again"
        );
    }
    // The restored subscription delivers updates from the new child.
    let touched = sessions[0]
        .request(&tool_call(json!("t"), "touch", json!({"uri": "mem://x"})))
        .await;
    assert_eq!(
        tool_text(&touched),
        "updated",
        "the bridge re-subscribed the new child"
    );
    let mut seen = String::new();
    let until = tokio::time::Instant::now() + Duration::from_secs(5);
    while !(seen.contains("notifications/resources/updated") && seen.contains("list_changed")) {
        let chunk = tokio::time::timeout_at(until, stream.chunk())
            .await
            .expect("updates within 5 s")
            .unwrap()
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    let metrics = metrics_text(&bridge).await;
    assert!(
        metrics.contains("mcp_bridge_child_restarts_total 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_child_that_keeps_dying_makes_the_bridge_give_up_and_exit_1() {
    let mut bridge = Bridge::start(
        &["--max-restarts", "2", "--restart-window", "60s"],
        &echo_child(&["--exit-at-start", "3"]),
    );
    let status = tokio::task::spawn_blocking(move || {
        let status = bridge.wait_exit(Duration::from_secs(20));
        (status, bridge.logs().join("\n"))
    })
    .await
    .unwrap();
    let (status, logs) = status;
    let status = status.expect("the bridge exits by itself");
    assert_eq!(status.code(), Some(1), "{logs}");
    assert!(logs.contains("giving up after 2 restarts"), "{logs}");
}

#[tokio::test]
async fn on_failure_does_not_restart_a_clean_exit() {
    let bridge = Bridge::start(
        &["--restart", "on-failure"],
        &echo_child(&["--exit-at-start", "0"]),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let body: Value = get_json(&bridge, "/readyz").await;
        if body["reason"]
            .as_str()
            .unwrap_or("")
            .contains("exited with status 0")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never reported the clean exit: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!bridge.logs().join("\n").contains("restarting"));
}

#[tokio::test]
async fn huge_lines_floods_and_invalid_utf8_stay_within_the_memory_bound() {
    let bridge = Bridge::echo(&[], &["--garbage", "--long-line", "100000000"]).await;
    let (s, _) = Session::open(&bridge, "2025-11-25").await;
    let r = s
        .request(&tool_call(
            json!(1),
            "flood",
            json!({"count": 20000, "size": 2048}),
        ))
        .await;
    assert_eq!(tool_text(&r), "flooded 20000");
    assert_eq!(
        tool_text(
            &s.request(&tool_call(json!(2), "echo", json!({"message": "alive"})))
                .await
        ),
        "alive"
    );
    let peak = peak_rss_kib(bridge.pid());
    // A 100 MB line is skipped while it streams by: memory stays near the 16 MiB line limit.
    assert!(peak < 96 * 1024, "peak RSS {peak} KiB");
    let text = metrics_text(&bridge).await;
    assert!(
        text.contains("mcp_bridge_child_lines_skipped_total{reason=\"too_long\"} 1"),
        "{text}"
    );
}

/// Opens 1000 sessions at once (checking the 1001st gets 503), abandons them and waits until
/// the idle timeout has reaped them all. Returns the bridge's RSS afterwards, in KiB.
async fn open_and_abandon_1000(bridge: &Bridge) -> u64 {
    let http = http();
    let opens = (0..1000).map(|i| {
        let (http, url) = (http.clone(), bridge.url());
        async move {
            post_json(&http, &url, None, &initialize_body(json!(i), "2025-11-25"))
                .await
                .status()
                .as_u16()
        }
    });
    let statuses = futures_util::future::join_all(opens).await;
    assert!(statuses.iter().all(|s| *s == 200), "1000 sessions open");
    let over = post_json(
        &http,
        &bridge.url(),
        None,
        &initialize_body(json!(1), "2025-11-25"),
    )
    .await;
    assert_eq!(over.status(), 503);
    assert!(over.headers().contains_key("retry-after"));
    drop(http); // abandon them, and the client's pooled connections with them
    let deadline = Instant::now() + Duration::from_secs(15);
    while !metrics_text(bridge)
        .await
        .contains("mcp_bridge_sessions_active{transport=\"streamable-http\"} 0")
    {
        assert!(Instant::now() < deadline, "idle sessions were not reaped");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    rss_kib(bridge.pid())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_abandoned_sessions_are_reaped_and_the_limit_is_enforced() {
    let bridge = Bridge::echo(
        // 3 s: opening 1000 sessions in a debug build beside other tests on 2 cores has taken
        // over 1.5 s, and a session reaped before the 1001st initialize let it in.
        &["--session-idle-timeout", "3s", "--max-sessions", "1000"],
        &[],
    )
    .await;
    let baseline = rss_kib(bridge.pid());
    let mut rounds = Vec::new();
    for _ in 0..4 {
        rounds.push(open_and_abandon_1000(&bridge).await);
    }
    eprintln!("RSS: {baseline} KiB at start, then {rounds:?} KiB after each round of 1000 reaped sessions");
    // glibc keeps freed pages, so RSS does not fall back to the start; what must hold is a
    // bound: 4,000 sessions opened and reaped must not cost what 4,000 live ones would.
    assert!(
        rounds[3] < baseline + 48 * 1024,
        "bounded: {baseline} KiB -> {rounds:?} KiB"
    );
    assert!(
        rounds[3] < rounds[1] + 12 * 1024,
        "no steady growth: {rounds:?} KiB"
    );
    Session::open(&bridge, "2025-11-25").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_during_200_requests_answers_every_one_and_exits_0() {
    let mut bridge = Bridge::echo(&["--shutdown-grace", "10s"], &[]).await;
    let mut sessions = Vec::new();
    for _ in 0..20 {
        sessions.push(Session::open(&bridge, "2025-11-25").await.0);
    }
    let pid = child_pid(&sessions[0]).await;
    let calls: Vec<_> = (0..200)
        .map(|i| sessions[i % 20].spawn_request(tool_call(json!(i), "sleep", json!({"ms": 5000}))))
        .collect();
    // SIGTERM once all 200 are at the child (a fixed wait was too short on a loaded machine:
    // requests not yet connected met a closed listener).
    let started = Instant::now();
    loop {
        let text = metrics_text(&bridge).await;
        if text
            .lines()
            .any(|l| l == "mcp_bridge_requests_in_flight 200")
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_millis(4500),
            "200 requests in flight within 4.5 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    signal(bridge.pid(), nix::sys::signal::Signal::SIGTERM);
    let mut answered = 0;
    for call in calls {
        let r = call.await.expect("every caller gets an answer");
        if tool_text(&r) == "slept 5000 ms" {
            answered += 1;
        }
    }
    assert_eq!(
        answered, 200,
        "accepted requests finish within the grace period"
    );
    let status = tokio::task::spawn_blocking(move || bridge.terminate())
        .await
        .unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(!process_alive(pid));
}

/// The pids of `pid`'s children (from /proc, host PID namespace).
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|c| {
            c.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// True when `pid` is a zombie.
fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

#[tokio::test]
async fn as_pid_1_the_bridge_reaps_orphans_keeps_its_childs_status_and_stops_everything() {
    // The child leaves three orphaned `sleep`s behind (they are re-parented to PID 1, the
    // bridge), then exits with status 3 after answering initialize and two calls.
    let script = format!(
        "for i in 1 2 3; do (sleep 0.3 &); done; exec {} --exit-after 3",
        echo_server().display()
    );
    let mut unshare = std::process::Command::new("unshare")
        .args([
            "--pid",
            "--fork",
            "--mount-proc",
            bridge_bin(),
            "--port",
            "0",
            "--log-format",
            "json",
            "--log-level",
            "debug",
            "--restart",
            "never",
            "--",
            "sh",
            "-c",
            &script,
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("unshare runs (util-linux; needs root)");
    let stderr = unshare.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let logs = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink = logs.clone();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if line.contains("mcp-bridge listening") {
                let v: Value = serde_json::from_str(&line).unwrap();
                let _ = tx.send(v["listen"].as_str().unwrap().to_string());
            }
            sink.lock().unwrap().push_str(&(line + "\n"));
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the bridge listens");
    let bridge_pid = *children_of(unshare.id())
        .first()
        .expect("unshare forked the bridge");
    let url = format!("http://{addr}/mcp");
    let http = http();
    let resp = post_json(&http, &url, None, &initialize_body(json!(1), "2025-11-25")).await;
    let session = Session {
        http: http.clone(),
        url,
        id: session_id(&resp),
    };
    session
        .request(&tool_call(json!(1), "echo", json!({"message": "a"})))
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let zombies: Vec<u32> = children_of(bridge_pid)
        .into_iter()
        .filter(|p| is_zombie(*p))
        .collect();
    assert!(
        zombies.is_empty(),
        "orphans were reaped, zombies left: {zombies:?}"
    );
    assert!(
        logs.lock().unwrap().contains("reaped an orphaned process"),
        "{}",
        logs.lock().unwrap()
    );
    session
        .request(&tool_call(json!(2), "echo", json!({"message": "b"})))
        .await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while !logs.lock().unwrap().contains("exited with status 3") {
        assert!(
            Instant::now() < deadline,
            "the child's own exit status is observed: {}",
            logs.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    signal(bridge_pid, nix::sys::signal::Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = unshare.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "SIGTERM stops the bridge");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status:?}: {}", logs.lock().unwrap());
    assert!(!process_alive(bridge_pid));
}

#[tokio::test]
async fn in_flight_limit_per_session_answers_429() {
    let bridge = Bridge::echo(&["--max-in-flight", "2"], &[]).await;
    let (s, _) = Session::open(&bridge, "2025-11-25").await;
    let (other, _) = Session::open(&bridge, "2025-11-25").await;
    let a = s.spawn_request(tool_call(json!(1), "sleep", json!({"ms": 1000})));
    let b = s.spawn_request(tool_call(json!(2), "sleep", json!({"ms": 1000})));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let third = s
        .post(&tool_call(json!(3), "echo", json!({"message": "x"})))
        .await;
    assert_eq!(third.status(), 429);
    assert!(third.headers().contains_key("retry-after"));
    let body: Value = third.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--max-in-flight"),
        "{body}"
    );
    assert_eq!(
        tool_text(
            &other
                .request(&tool_call(json!(1), "echo", json!({"message": "free"})))
                .await
        ),
        "free",
        "other sessions are not limited"
    );
    a.await.unwrap();
    b.await.unwrap();
    assert_eq!(
        tool_text(
            &s.request(&tool_call(json!(4), "echo", json!({"message": "ok"})))
                .await
        ),
        "ok",
        "slots are freed"
    );
}

#[tokio::test]
async fn requests_during_a_restart_wait_for_the_new_child() {
    let bridge = Bridge::echo(&["--queue-timeout", "5s"], &[]).await;
    let (s, _) = Session::open(&bridge, "2025-11-25").await;
    let old = child_pid(&s).await;
    signal(old, nix::sys::signal::Signal::SIGKILL);
    tokio::time::sleep(Duration::from_millis(30)).await;
    let r = s
        .request(&tool_call(
            json!(1),
            "echo",
            json!({"message": "after restart"}),
        ))
        .await;
    assert_eq!(tool_text(&r), "after restart", "{r}");
    assert_ne!(child_pid(&s).await, old);
}

#[tokio::test]
async fn oversized_heads_get_431_and_slow_heads_are_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let bridge = Bridge::echo(
        &[
            "--max-header-bytes",
            "16384",
            "--header-read-timeout",
            "500ms",
        ],
        &[],
    )
    .await;
    let big = "x".repeat(40_000);
    let resp = http()
        .get(bridge.at("/healthz"))
        .header("x-big", big)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 431);
    let mut tcp = tokio::net::TcpStream::connect(bridge.addr).await.unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf))
        .await
        .expect("the bridge closes a slow head")
        .unwrap_or(0);
    let head = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(n == 0 || head.starts_with("HTTP/1.1 408"), "{head:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
}
