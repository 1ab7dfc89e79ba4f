//! The shutdown sequence, written down once (DESIGN.md section 4, PROTOCOL.md section 1.3):
//! stop accepting (done by the caller), mark draining, close GET streams, let in-flight requests
//! finish for up to the grace period, then stop the child (stdin EOF, SIGTERM, SIGKILL to its
//! process group).

use crate::app::AppState;
use hyper_util::server::graceful::GracefulShutdown;
use std::time::Duration;
use tokio::signal::unix::{signal as unix_signal, SignalKind};

/// How long each step of stopping the child waits (after stdin EOF, after SIGTERM), as the SDK
/// clients do (2 s each). Total shutdown time is at most `shutdown_grace + 2 * CHILD_STOP_STEP`
/// plus a moment.
pub const CHILD_STOP_STEP: Duration = Duration::from_secs(2);

/// Completes on the first SIGTERM or SIGINT.
pub async fn signal() {
    let mut term = unix_signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    let mut int = unix_signal(SignalKind::interrupt()).expect("installing a SIGINT handler");
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::info!(signal = name, "shutdown requested");
}

/// Runs the drain: readiness red and new sessions refused; the requests sessions have in
/// flight (on every transport) finish; then streams and connections close; all within the grace
/// period; then the children stop (the shared one, or every session's own, concurrently).
pub async fn drain(state: &AppState, graceful: GracefulShutdown) {
    state.shutdown.cancel();
    let grace = state.config.shutdown_grace;
    let deadline = tokio::time::Instant::now() + grace;
    while state.sessions.in_flight() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    state.closing.cancel();
    state.sessions.close_all_streams();
    if tokio::time::timeout_at(deadline, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            grace_ms = grace.as_millis() as u64,
            "connections still open after the grace period; closing them"
        );
    }
    let sessions = state.sessions.all();
    let shared = state.shared_child.lock().expect("child lock").clone();
    let children = shared.into_iter().chain(
        sessions
            .iter()
            .filter_map(|s| s.child.as_ref().map(|c| c.current())),
    );
    let stops = children.map(|child| async move {
        let info = child.stop(CHILD_STOP_STEP).await;
        tracing::info!(child.pid = child.pid(), status = %info, "child stopped");
    });
    futures_util::future::join_all(stops).await;
    tracing::info!("mcp-bridge exiting");
}
