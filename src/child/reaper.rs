//! PID-1 duty (DESIGN.md section 4): a container's init must reap orphaned processes, or every
//! grandchild that npx or uvx leaves behind stays a zombie. When the bridge runs as PID 1 it
//! reaps every exited process that is not one of its own children, whose exit status tokio's
//! process driver must still observe. Waiting is peeked first (`WNOWAIT`) so an own child's
//! status is never stolen.

use nix::errno::Errno;
use nix::sys::wait::{waitid, waitpid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

/// Pids of the bridge's own children (spawned and not yet waited for by tokio).
static OWN_CHILDREN: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());

/// Records a child the bridge spawned (its status belongs to tokio's `Child::wait`).
pub fn register(pid: u32) {
    OWN_CHILDREN.lock().expect("reaper lock").insert(pid as i32);
}

/// Forgets a child after its status was collected.
pub fn unregister(pid: u32) {
    OWN_CHILDREN
        .lock()
        .expect("reaper lock")
        .remove(&(pid as i32));
}

/// When this process is PID 1, reaps orphans on every SIGCHLD (and once a second, in case a
/// signal was coalesced) until `shutdown` fires. Returns at once otherwise.
pub async fn run(shutdown: CancellationToken) {
    if std::process::id() != 1 {
        return;
    }
    let Ok(mut sigchld) = signal(SignalKind::child()) else {
        tracing::warn!("cannot watch SIGCHLD; orphaned processes will not be reaped");
        return;
    };
    tracing::info!("running as PID 1: reaping orphaned processes");
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = sigchld.recv() => {}
            _ = tick.tick() => {}
        }
        reap_orphans();
    }
}

/// Reaps every exited process that is not an own child. Stops at an own child's exit (tokio
/// collects it; the next round continues past it) or when nothing has exited.
fn reap_orphans() {
    loop {
        let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
        let pid = match waitid(Id::All, flags) {
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return,
            Ok(status) => match status.pid() {
                Some(pid) => pid,
                None => return,
            },
            Err(e) => {
                tracing::debug!(error = %e, "waitid failed");
                return;
            }
        };
        if OWN_CHILDREN
            .lock()
            .expect("reaper lock")
            .contains(&pid.as_raw())
        {
            return;
        }
        match waitpid(Pid::from_raw(pid.as_raw()), Some(WaitPidFlag::WNOHANG)) {
            Ok(status) => {
                tracing::debug!(pid = pid.as_raw(), ?status, "reaped an orphaned process")
            }
            Err(e) => {
                tracing::debug!(pid = pid.as_raw(), error = %e, "reaping failed");
                return;
            }
        }
    }
}
