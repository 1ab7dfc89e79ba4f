//! The child process: spawning it in its own process group with piped stdio, writing to its
//! stdin, pumping its stderr into logs, observing its exit, and stopping it
//! (PROTOCOL.md sections 1.1 and 1.3, DESIGN.md section 4).
//!
//! Invariants: the child is the leader of a new process group, so signals reach every process it
//! started (npx starts node, uvx starts python); stdin is written only by the writer task, from a
//! bounded queue of whole lines; stderr is always drained, so the child never blocks on it; the
//! exit status is published once on a watch channel.

pub mod reaper;
mod stderr;

use crate::jsonrpc::codec::LineCodec;
use bytes::Bytes;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::{counter::Counter, family::Family, gauge::Gauge};
use prometheus_client::registry::{Registry, Unit};
use std::fmt;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::process::{ChildStdin, ChildStdout, Command};
use tokio::sync::{mpsc, watch};
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// What to start and how: the command line, its environment and the I/O bounds.
#[derive(Debug, Clone)]
pub struct ChildSpec {
    /// Program to run (looked up on `PATH`).
    pub program: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Extra environment variables (`--env K=V`), applied after inheritance.
    pub env: Vec<(String, String)>,
    /// When true the child starts from an empty environment plus `env`.
    pub clear_env: bool,
    /// Longest stdout line accepted, in bytes; longer lines are skipped.
    pub max_line_bytes: usize,
    /// Capacity of the queue of lines waiting to be written to stdin, in messages.
    pub stdin_queue: usize,
}

/// Labels of `mcp_bridge_child_lines_skipped_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SkipLabels {
    /// `not_json`, `not_jsonrpc`, `too_long` or `empty`.
    pub reason: &'static str,
}

/// Metrics of the child processes (shared and per-session alike).
#[derive(Debug, Default)]
pub struct ChildMetrics {
    /// 1 while the shared child is running and initialized, else 0 (per-session mode: 1 while
    /// the bridge can start children).
    pub up: Gauge,
    /// Times a child was restarted after it exited.
    pub restarts: Counter,
    /// Child processes running now.
    pub running: Gauge,
    /// Exit code of the child that exited last, or minus the signal that killed it.
    pub last_exit_status: Gauge,
    /// Unix time in seconds at which the newest child was started.
    pub start_time: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// Lines from the child's stdout that were not forwarded, by reason.
    pub lines_skipped: Family<SkipLabels, Counter>,
    /// Messages queued for the children's stdin and not yet written.
    pub queue_depth: Gauge,
}

impl ChildMetrics {
    /// Creates the handles and registers them in `r` (names below `mcp_bridge_`).
    pub fn register(r: &mut Registry) -> ChildMetrics {
        let m = ChildMetrics::default();
        for reason in ["not_json", "not_jsonrpc", "too_long", "empty"] {
            let _ = m.lines_skipped.get_or_create(&SkipLabels { reason });
        }
        r.register(
            "child_up",
            "1 while the shared child is running and initialized (per-session mode: while children can be started)",
            m.up.clone(),
        );
        r.register(
            "child_restarts",
            "Times a child was restarted after it exited",
            m.restarts.clone(),
        );
        r.register(
            "children_running",
            "Child processes running now",
            m.running.clone(),
        );
        r.register(
            "child_last_exit_status",
            "Exit code of the child that exited last, or minus the signal that killed it",
            m.last_exit_status.clone(),
        );
        r.register_with_unit(
            "child_start_time",
            "Unix time at which the newest child was started",
            Unit::Seconds,
            m.start_time.clone(),
        );
        r.register(
            "child_lines_skipped",
            "Lines from the child's stdout that were not forwarded, by reason",
            m.lines_skipped.clone(),
        );
        r.register(
            "child_queue_depth",
            "Messages queued for the children's stdin and not yet written",
            m.queue_depth.clone(),
        );
        m
    }

    /// Counts one skipped child stdout line.
    pub fn skipped(&self, reason: &'static str) {
        self.lines_skipped
            .get_or_create(&SkipLabels { reason })
            .inc();
    }
}

/// How the child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitInfo {
    /// The exit code, when it exited normally.
    pub code: Option<i32>,
    /// The signal number, when a signal killed it.
    pub signal: Option<i32>,
}

impl fmt::Display for ExitInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.code, self.signal) {
            (Some(c), _) => write!(f, "exited with status {c}"),
            (None, Some(s)) => match Signal::try_from(s) {
                Ok(sig) => write!(f, "killed by signal {s} ({sig})"),
                Err(_) => write!(f, "killed by signal {s}"),
            },
            (None, None) => write!(f, "exited (status unknown)"),
        }
    }
}

/// A running child: its pid, the stdin queue, the stdout frame stream and its exit.
pub struct SpawnedChild {
    /// Process id, which is also its process group id.
    pub pid: u32,
    /// Queue of complete lines (each ending in `\n`) for the child's stdin.
    pub stdin: mpsc::Sender<Bytes>,
    /// The child's stdout, split into lines.
    pub stdout: FramedRead<ChildStdout, LineCodec>,
    /// Control of the running process.
    pub control: ChildControl,
}

/// Cloneable control of a running child: observe its exit, stop it.
#[derive(Clone, Debug)]
pub struct ChildControl {
    pid: u32,
    exit: watch::Receiver<Option<ExitInfo>>,
    close_stdin: CancellationToken,
}

/// The child a session currently runs on (per-session mode): replaced when it is respawned.
#[derive(Clone, Debug)]
pub struct ChildSlot(std::sync::Arc<std::sync::Mutex<ChildControl>>);

impl ChildSlot {
    /// A slot holding `control`.
    pub fn new(control: ChildControl) -> ChildSlot {
        ChildSlot(std::sync::Arc::new(std::sync::Mutex::new(control)))
    }

    /// The child running now.
    pub fn current(&self) -> ChildControl {
        self.0.lock().expect("child slot lock").clone()
    }

    /// Stops the child running now (see [`ChildControl::stop`]).
    pub async fn stop(&self, step: Duration) -> ExitInfo {
        self.current().stop(step).await
    }

    /// Puts a respawned child in the slot.
    pub fn replace(&self, control: ChildControl) {
        *self.0.lock().expect("child slot lock") = control;
    }
}

/// Spawns the child described by `spec`, with its helper tasks on `tracker`, counted in
/// `metrics` (running children, start time, last exit status, stdin queue depth).
///
/// Errors: the `io::Error` of the spawn (e.g. `NotFound` for an unknown program).
pub fn spawn(
    spec: &ChildSpec,
    tracker: &TaskTracker,
    metrics: &Arc<crate::metrics::Metrics>,
) -> std::io::Result<SpawnedChild> {
    let mut cmd = Command::new(&spec.program);
    cmd.args(&spec.args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if spec.clear_env {
        cmd.env_clear();
    }
    // The bridge's own bearer token is the clients' secret, not the child's.
    cmd.env_remove(crate::auth::TOKEN_ENV);
    cmd.env_remove(crate::session::seal::SECRET_ENV);
    cmd.envs(spec.env.iter().map(|(k, v)| (k, v)));
    let mut child = cmd.spawn()?;
    let pid = child.id().expect("a just-spawned child has a pid");
    reaper::register(pid);
    let (stdin, stdout, err) = (child.stdin.take(), child.stdout.take(), child.stderr.take());
    let (stdin, stdout, err) = (
        stdin.expect("piped"),
        stdout.expect("piped"),
        err.expect("piped"),
    );
    let (line_tx, line_rx) = mpsc::channel(spec.stdin_queue.max(1));
    let close_stdin = CancellationToken::new();
    tracker.spawn(write_stdin(
        stdin,
        line_rx,
        close_stdin.clone(),
        pid,
        metrics.clone(),
    ));
    tracker.spawn(stderr::pump(err, pid));
    let (exit_tx, exit_rx) = watch::channel(None);
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    metrics.child.start_time.set(started.as_secs_f64());
    metrics.child.running.inc();
    let metrics = metrics.clone();
    tracker.spawn(async move {
        let info = match child.wait().await {
            Ok(status) => exit_info(status),
            Err(_) => ExitInfo {
                code: None,
                signal: None,
            },
        };
        reaper::unregister(pid);
        metrics.child.running.dec();
        let status = info.code.or(info.signal.map(|s| -s)).unwrap_or(-1);
        metrics.child.last_exit_status.set(i64::from(status));
        if info.code == Some(0) {
            tracing::info!(child.pid = pid, status = %info, "child exited");
        } else {
            tracing::warn!(child.pid = pid, status = %info, "child exited");
        }
        let _ = exit_tx.send(Some(info));
    });
    tracing::info!(child.pid = pid, program = %spec.program, "child started");
    Ok(SpawnedChild {
        pid,
        stdin: line_tx,
        stdout: FramedRead::new(stdout, LineCodec::new(spec.max_line_bytes)),
        control: ChildControl {
            pid,
            exit: exit_rx,
            close_stdin,
        },
    })
}

fn exit_info(status: std::process::ExitStatus) -> ExitInfo {
    use std::os::unix::process::ExitStatusExt;
    ExitInfo {
        code: status.code(),
        signal: status.signal(),
    }
}

/// Writes queued lines to stdin, flushing whenever the queue runs empty; closes stdin (EOF) when
/// `close` fires or every sender is gone. Each line taken off the queue (written or, at the end,
/// dropped) leaves `mcp_bridge_child_queue_depth`, which the router raised when queueing it.
async fn write_stdin(
    stdin: ChildStdin,
    mut lines: mpsc::Receiver<Bytes>,
    close: CancellationToken,
    pid: u32,
    metrics: Arc<crate::metrics::Metrics>,
) {
    let depth = &metrics.child.queue_depth;
    let mut out = BufWriter::with_capacity(64 * 1024, stdin);
    loop {
        let line = tokio::select! {
            biased;
            _ = close.cancelled() => break,
            line = lines.recv() => match line { Some(l) => l, None => break },
        };
        depth.dec();
        let mut result = out.write_all(&line).await;
        while result.is_ok() {
            let Ok(next) = lines.try_recv() else { break };
            depth.dec();
            result = out.write_all(&next).await;
        }
        if let Err(e) = result.and(out.flush().await) {
            tracing::warn!(child.pid = pid, error = %e, "writing to child stdin failed");
            break;
        }
    }
    lines.close();
    while lines.try_recv().is_ok() {
        depth.dec();
    }
    let _ = out.shutdown().await;
}

impl ChildControl {
    /// The child's pid (also its process group id).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// A receiver that holds `Some(ExitInfo)` once the child has exited.
    pub fn exit(&self) -> watch::Receiver<Option<ExitInfo>> {
        self.exit.clone()
    }

    /// Waits until the child has exited and returns how. Cancel safe.
    pub async fn exited(&self) -> ExitInfo {
        let mut rx = self.exit.clone();
        let info = rx.wait_for(|e| e.is_some()).await.map(|e| *e);
        info.ok().flatten().unwrap_or(ExitInfo {
            code: None,
            signal: None,
        })
    }

    /// Stops the child per the MCP stdio shutdown sequence (PROTOCOL.md section 1.3): close its
    /// stdin, wait up to `step`, SIGTERM the child and its process group, wait up to `step` for
    /// all of them to exit, SIGKILL what is left. Returns how the child ended. Takes at most
    /// about `2 * step` plus the final reap, also for a child that ignores stdin EOF and
    /// SIGTERM or left its process group.
    pub async fn stop(&self, step: Duration) -> ExitInfo {
        self.close_stdin.cancel();
        if let Ok(info) = tokio::time::timeout(step, self.exited()).await {
            // The child is gone; anything it started in its group gets the last step.
            self.term_then_kill(step).await;
            return info;
        }
        tracing::info!(
            child.pid = self.pid,
            "child ignored stdin EOF, sending SIGTERM"
        );
        self.term_then_kill(step).await;
        self.exited().await
    }

    /// SIGTERM to the child (unless it exited) and its process group, up to `step` for all of
    /// them to exit, then SIGKILL to whatever is left. Returns at once when nothing is left.
    async fn term_then_kill(&self, step: Duration) {
        if !self.anything_alive() {
            return;
        }
        self.signal_all(Signal::SIGTERM);
        let deadline = tokio::time::Instant::now() + step;
        while self.anything_alive() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if self.anything_alive() {
            tracing::warn!(
                child.pid = self.pid,
                "process group survived SIGTERM, sending SIGKILL"
            );
            self.signal_all(Signal::SIGKILL);
        }
    }

    /// True while the child has not exited or any process of its group exists.
    fn anything_alive(&self) -> bool {
        self.exit.borrow().is_none() || self.group_alive()
    }

    /// Sends `sig` to the child's process group, and to the child itself while it has not
    /// exited (it may have left the group).
    fn signal_all(&self, sig: Signal) {
        self.signal_group(sig);
        if self.exit.borrow().is_none() {
            let _ = nix::sys::signal::kill(Pid::from_raw(self.pid as i32), sig);
        }
    }

    fn signal_group(&self, sig: Signal) {
        let pgid = Pid::from_raw(self.pid as i32);
        if let Err(e) = killpg(pgid, sig) {
            if e != nix::errno::Errno::ESRCH {
                tracing::warn!(child.pid = self.pid, error = %e, signal = %sig, "killpg failed");
            }
        }
    }

    /// True while any process of the child's process group exists (signal 0 probe).
    fn group_alive(&self) -> bool {
        killpg(Pid::from_raw(self.pid as i32), None).is_ok()
    }
}
