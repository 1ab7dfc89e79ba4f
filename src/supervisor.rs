//! Supervision of the shared child (DESIGN.md section 4): initialize it, publish its state,
//! and when it exits restart it per `--restart` with exponential backoff and jitter, re-initialize
//! it with the cached parameters and restore what sessions had (subscriptions, log level), so
//! that sessions survive. Gives up after `--max-restarts` restarts within `--restart-window`:
//! readiness stays red and the bridge exits non-zero so an orchestrator can replace it.

use crate::app::UpstreamState;
use crate::child::{self, ChildControl, ChildSlot, ChildSpec, ExitInfo};
use crate::cli::RestartPolicy;
use crate::jsonrpc::Message;
use crate::metrics::Metrics;
use crate::router::{self, InitCache, RouterHandle};
use crate::session::{SessionKey, Sessions};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// First wait before a restart.
pub const INITIAL_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait before a restart (the backoff cap).
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A child that ran this long resets the backoff to [`INITIAL_BACKOFF`].
pub const STABLE_UPTIME: Duration = Duration::from_secs(30);

/// Restart settings from the command line.
#[derive(Debug, Clone, Copy)]
pub struct RestartSettings {
    /// When to restart.
    pub policy: RestartPolicy,
    /// Restarts allowed within `window` before giving up.
    pub max_restarts: usize,
    /// The sliding window for `max_restarts`.
    pub window: Duration,
}

/// Everything the supervisor task owns.
pub struct Supervisor {
    /// What to spawn on restart.
    pub spec: ChildSpec,
    /// Restart policy.
    pub settings: RestartSettings,
    /// The router the child is attached to.
    pub router: RouterHandle,
    /// The running child, for the shutdown sequence.
    pub current: Arc<Mutex<Option<ChildControl>>>,
    /// Published child state.
    pub state: watch::Sender<UpstreamState>,
    /// Client capabilities offered in the bridge's `initialize`.
    pub capabilities: serde_json::Value,
    /// Time for `initialize`.
    pub init_timeout: Duration,
    /// Shutdown began: stop restarting.
    pub shutdown: CancellationToken,
    /// Fired (with a reason in `fatal_reason`) when the supervisor gives up.
    pub fatal: CancellationToken,
    /// Why the supervisor gave up.
    pub fatal_reason: Arc<Mutex<Option<String>>>,
    /// Metric handles.
    pub metrics: Arc<Metrics>,
    /// Task owner, for the spawned child's helper tasks.
    pub tracker: TaskTracker,
}

impl Supervisor {
    /// Runs until shutdown, the policy says stop, or the restart budget is spent. `control` is
    /// the child already attached to the router.
    pub async fn run(self, mut control: ChildControl) {
        let mut restarts = Restarts::new(self.settings);
        let mut restarted = false;
        loop {
            let started = Instant::now();
            let info = self.initialize_and_wait(&control, restarted).await;
            self.metrics.child.up.set(0);
            if self.shutdown.is_cancelled() {
                return;
            }
            let wait = match restarts.next(info, started.elapsed()) {
                Decision::Restart(wait) => wait,
                Decision::Stop => {
                    self.state
                        .send_replace(UpstreamState::Exited(info.to_string()));
                    return;
                }
                Decision::GiveUp(count) => {
                    let window = self.settings.window.as_secs();
                    return self.fail(format!(
                        "child process {info}; giving up after {count} restarts within {window} s (--max-restarts, --restart-window)"
                    ));
                }
            };
            self.state.send_replace(UpstreamState::Restarting(format!(
                "child process {info}; restarting in {} ms",
                wait.as_millis()
            )));
            tracing::warn!(status = %info, wait_ms = wait.as_millis() as u64, "child exited, restarting");
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            match self.respawn().await {
                Some(c) => control = c,
                None => return,
            }
            restarted = true;
        }
    }

    /// Initializes the attached child, publishes readiness, and waits for its exit.
    async fn initialize_and_wait(&self, control: &ChildControl, restarted: bool) -> ExitInfo {
        self.state.send_replace(UpstreamState::Starting);
        tokio::select! {
            result = router::initialize_child(&self.router, self.init_timeout, self.capabilities.clone()) => match result {
                Ok(cache) => self.ready(control, cache, restarted).await,
                Err(e) => {
                    tracing::error!(child.pid = control.pid(), error = %e, "child initialize failed");
                    self.state.send_replace(UpstreamState::Failed(e.to_string()));
                    // A child that cannot initialize is stopped, so the restart policy and its
                    // budget apply instead of staying not-ready forever.
                    control.stop(crate::shutdown::CHILD_STOP_STEP).await;
                }
            },
            _ = control.exited() => {}
        }
        control.exited().await
    }

    async fn ready(&self, control: &ChildControl, cache: InitCache, restarted: bool) {
        tracing::info!(
            child.pid = control.pid(),
            server = cache.server_name(),
            restarted,
            "child initialized, ready"
        );
        if restarted {
            self.router
                .restore(list_changed_for(&cache.result["capabilities"]))
                .await;
        }
        self.metrics.child.up.set(1);
        self.state
            .send_replace(UpstreamState::Ready(Arc::new(cache)));
    }

    /// Gives up for good: not ready with `why`, and the bridge drains and exits 1.
    fn fail(&self, why: String) {
        tracing::error!(reason = %why, "child supervision gave up");
        self.state.send_replace(UpstreamState::Failed(why.clone()));
        *self.fatal_reason.lock().expect("fatal lock") = Some(why);
        self.fatal.cancel();
    }

    /// Spawns a new child and attaches it to the router. `None` when spawning fails for good
    /// (the supervisor then gives up).
    async fn respawn(&self) -> Option<ChildControl> {
        match child::spawn(&self.spec, &self.tracker, &self.metrics) {
            Ok(spawned) => {
                let control = spawned.control.clone();
                *self.current.lock().expect("child lock") = Some(control.clone());
                self.metrics.child.restarts.inc();
                self.router.attach(spawned).await;
                Some(control)
            }
            Err(e) => {
                self.fail(format!(
                    "cannot restart the child {:?}: {e}",
                    self.spec.program
                ));
                None
            }
        }
    }
}

/// What to do after a child exited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Restart after this wait.
    Restart(Duration),
    /// The policy says no restart.
    Stop,
    /// The budget is spent: this many restarts happened within the window.
    GiveUp(usize),
}

/// Restart bookkeeping (pure): the policy, the sliding-window budget and the backoff with
/// jitter, reset after a stable run.
#[derive(Debug)]
pub struct Restarts {
    settings: RestartSettings,
    recent: VecDeque<Instant>,
    backoff: Duration,
}

impl Restarts {
    /// Fresh bookkeeping for `settings`.
    pub fn new(settings: RestartSettings) -> Self {
        Restarts {
            settings,
            recent: VecDeque::new(),
            backoff: INITIAL_BACKOFF,
        }
    }

    /// Decides after an exit `info` of a child that ran for `uptime`.
    pub fn next(&mut self, info: ExitInfo, uptime: Duration) -> Decision {
        let restart = match self.settings.policy {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => info.code != Some(0),
            RestartPolicy::Never => false,
        };
        if !restart {
            return Decision::Stop;
        }
        let now = Instant::now();
        self.recent
            .retain(|t| now.duration_since(*t) < self.settings.window);
        if self.recent.len() >= self.settings.max_restarts {
            return Decision::GiveUp(self.recent.len());
        }
        self.recent.push_back(now);
        if uptime >= STABLE_UPTIME {
            self.backoff = INITIAL_BACKOFF;
        }
        let wait = jitter(self.backoff);
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        Decision::Restart(wait)
    }
}

/// The list-changed notifications that fit the child's declared capabilities.
fn list_changed_for(caps: &serde_json::Value) -> Vec<&'static str> {
    [
        ("tools", "notifications/tools/list_changed"),
        ("resources", "notifications/resources/list_changed"),
        ("prompts", "notifications/prompts/list_changed"),
    ]
    .into_iter()
    .filter(|(cap, _)| caps.get(cap).is_some())
    .map(|(_, method)| method)
    .collect()
}

/// `base` with up to ±20 % random jitter, so that many bridges do not restart in lockstep.
fn jitter(base: Duration) -> Duration {
    let mut byte = [0u8; 1];
    let _ = getrandom::fill(&mut byte);
    let factor = 0.8 + 0.4 * f64::from(byte[0]) / 255.0;
    base.mul_f64(factor)
}

/// What a per-session child's supervisor needs (see [`session_child`]).
pub struct SessionChild {
    /// The session the child serves.
    pub key: SessionKey,
    /// What to spawn (with the session's `--session-env` variables).
    pub spec: ChildSpec,
    /// Where the session finds its current child.
    pub slot: ChildSlot,
    /// The session's router.
    pub router: RouterHandle,
    /// The session's original `initialize` request, replayed to a respawned child.
    pub init: Vec<u8>,
    /// The session registry (the session may end meanwhile).
    pub sessions: Arc<Sessions>,
    /// Task owner for the child's helper tasks.
    pub tracker: TaskTracker,
    /// Shutdown began: stop respawning.
    pub shutdown: CancellationToken,
    /// Restart policy and budget (per session).
    pub settings: RestartSettings,
    /// Time for the replayed `initialize`.
    pub init_timeout: Duration,
    /// Children running in per-session mode.
    pub children: Arc<AtomicUsize>,
    /// Metric handles.
    pub metrics: Arc<Metrics>,
}

/// Per-session mode: when the session's child exits, respawn it per `--restart` (same backoff
/// and budget as the shared child, counted per session), replay the session's original
/// `initialize` to it and restore subscriptions and log level. When the policy or the budget
/// says stop, or the respawn fails, the session ends (404 afterwards).
pub async fn session_child(sc: SessionChild) {
    let mut restarts = Restarts::new(sc.settings);
    loop {
        let started = Instant::now();
        let info = sc.slot.current().exited().await;
        if sc.shutdown.is_cancelled() || sc.sessions.by_key(sc.key).is_none() {
            return;
        }
        let Decision::Restart(wait) = restarts.next(info, started.elapsed()) else {
            return end_session(
                &sc,
                &format!("its child process {info} and is not restarted"),
            );
        };
        tokio::time::sleep(wait).await;
        if sc.sessions.by_key(sc.key).is_none() || sc.shutdown.is_cancelled() {
            return;
        }
        if let Err(why) = respawn_session_child(&sc).await {
            return end_session(&sc, &why);
        }
        tracing::info!(child.pid = sc.slot.current().pid(), status = %info, "session child respawned");
    }
}

async fn respawn_session_child(sc: &SessionChild) -> Result<(), String> {
    let spawned = child::spawn(&sc.spec, &sc.tracker, &sc.metrics)
        .map_err(|e| format!("cannot respawn its child: {e}"))?;
    let control = spawned.control.clone();
    sc.children.fetch_add(1, Ordering::SeqCst);
    let counter = sc.children.clone();
    let watched = control.clone();
    sc.tracker.spawn(async move {
        watched.exited().await;
        counter.fetch_sub(1, Ordering::SeqCst);
    });
    sc.slot.replace(control);
    sc.metrics.child.restarts.inc();
    sc.router.attach(spawned).await;
    let init =
        Message::parse(&sc.init).map_err(|e| format!("stored initialize is invalid: {e}"))?;
    let reply = sc
        .router
        .call(SessionKey::BRIDGE, init, sc.init_timeout, None)
        .await;
    let body = reply.map_err(|e| format!("its respawned child did not initialize: {e}"))?;
    let response: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    if response.get("result").is_none() {
        return Err(format!(
            "its respawned child refused initialize: {response}"
        ));
    }
    let note = br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    sc.router
        .notify(SessionKey::BRIDGE, Message::parse(note).expect("valid"))
        .await;
    sc.router
        .restore(list_changed_for(&response["result"]["capabilities"]))
        .await;
    Ok(())
}

fn end_session(sc: &SessionChild, why: &str) {
    let Some(session) = sc.sessions.by_key(sc.key) else {
        return;
    };
    sc.sessions.remove(&session.id);
    tracing::info!(session.id = %session.id, reason = why, "session ended");
    let router = sc.router.clone();
    let key = sc.key;
    sc.tracker
        .spawn(async move { router.session_closed(key).await });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(policy: RestartPolicy) -> RestartSettings {
        RestartSettings {
            policy,
            max_restarts: 2,
            window: Duration::from_secs(60),
        }
    }

    #[test]
    fn restarts_follow_policy_budget_and_backoff() {
        let crash = ExitInfo {
            code: None,
            signal: Some(9),
        };
        let clean = ExitInfo {
            code: Some(0),
            signal: None,
        };
        let mut r = Restarts::new(settings(RestartPolicy::Always));
        let first = r.next(crash, Duration::ZERO);
        let second = r.next(crash, Duration::ZERO);
        match (first, second) {
            (Decision::Restart(a), Decision::Restart(b)) => {
                assert!(b > a, "backoff grows: {a:?} then {b:?}")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(r.next(crash, Duration::ZERO), Decision::GiveUp(2));
        assert_eq!(
            Restarts::new(settings(RestartPolicy::OnFailure)).next(clean, Duration::ZERO),
            Decision::Stop
        );
        assert!(matches!(
            Restarts::new(settings(RestartPolicy::OnFailure)).next(crash, Duration::ZERO),
            Decision::Restart(_)
        ));
        assert_eq!(
            Restarts::new(settings(RestartPolicy::Never)).next(crash, Duration::ZERO),
            Decision::Stop
        );
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        for _ in 0..100 {
            let j = jitter(Duration::from_millis(1000));
            assert!(
                j >= Duration::from_millis(800) && j <= Duration::from_millis(1200),
                "{j:?}"
            );
        }
    }

    #[test]
    fn list_changed_follows_capabilities() {
        let cache = InitCache::new(
            serde_json::json!({"capabilities": {"tools": {}, "prompts": {}}, "protocolVersion": "2025-11-25"}),
        );
        assert_eq!(
            list_changed_for(&cache.result["capabilities"]),
            vec![
                "notifications/tools/list_changed",
                "notifications/prompts/list_changed"
            ]
        );
    }
}
