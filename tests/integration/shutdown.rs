//! SIGTERM: in-flight requests finish, the child and its process group are stopped, nothing is
//! left behind.

use crate::support::*;
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test]
async fn sigterm_completes_the_in_flight_request_and_leaves_no_child() {
    let mut bridge = Bridge::echo(&[], &[]).await;
    let (s, _) = Session::open(&bridge, "2025-11-25").await;
    let pid = child_pid(&s).await;
    assert!(process_alive(pid));
    let in_flight = s.spawn_request(tool_call(json!(1), "sleep", json!({"ms": 1200})));
    tokio::time::sleep(Duration::from_millis(300)).await;
    signal(bridge.pid(), nix::sys::signal::Signal::SIGTERM);
    let response = in_flight.await.unwrap();
    assert_eq!(tool_text(&response), "slept 1200 ms");
    let status = tokio::task::spawn_blocking(move || {
        let status = bridge.wait_exit(Duration::from_secs(20));
        (status, bridge)
    })
    .await
    .unwrap()
    .0
    .expect("bridge exits after SIGTERM");
    assert!(status.success(), "{status:?}");
    assert!(!process_alive(pid), "child {pid} is gone");
}

#[tokio::test]
async fn a_child_that_ignores_eof_and_sigterm_is_killed_within_the_bound() {
    // `trap '' TERM` makes SIGTERM ignored, and that survives exec; a pending sleep keeps the
    // echo server from exiting on stdin EOF.
    let script = format!("trap '' TERM; exec {}", echo_server().display());
    let mut bridge = Bridge::start(
        &["--shutdown-grace", "500ms"],
        &["sh".into(), "-c".into(), script],
    );
    bridge.wait_ready().await;
    let (s, _) = Session::open(&bridge, "2025-11-25").await;
    let pid = child_pid(&s).await;
    let _stuck = tokio::spawn({
        let s = s.clone();
        async move {
            s.post(&tool_call(json!(1), "sleep", json!({"ms": 60000})))
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let status = tokio::task::spawn_blocking(move || bridge.terminate())
        .await
        .unwrap();
    let took = started.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(
        took < Duration::from_secs(8),
        "grace 0.5 s + 2 s EOF + 2 s TERM, took {took:?}"
    );
    assert!(
        took >= Duration::from_secs(4),
        "SIGKILL came only after both waits, took {took:?}"
    );
    assert!(!process_alive(pid), "child {pid} was killed");
}

#[tokio::test]
async fn with_nothing_in_flight_the_bridge_exits_at_once_in_both_isolation_modes() {
    // A child that exits on stdin EOF and no request in flight: nothing to wait for. (The
    // routers used to outlive the drain, so every exit waited out a 1 s task timeout.)
    for isolation in ["shared", "session"] {
        let mut bridge = Bridge::echo(&["--isolation", isolation], &[]).await;
        let (s, _) = Session::open(&bridge, "2025-11-25").await;
        let pid = child_pid(&s).await;
        let started = Instant::now();
        let status = tokio::task::spawn_blocking(move || bridge.terminate())
            .await
            .unwrap();
        let took = started.elapsed();
        assert!(status.success(), "{isolation}: {status:?}");
        assert!(
            took < Duration::from_secs(1),
            "{isolation}: SIGTERM to exit took {took:?}"
        );
        assert!(!process_alive(pid), "{isolation}: child {pid} is gone");
    }
}
