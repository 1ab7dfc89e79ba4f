//! The router: the one task that owns a child's stdin queue, its stdout stream and all routing
//! state for it: the [`IdMap`] of requests in flight, progress tokens, server-to-client requests,
//! subscriptions, log levels and task owners (DESIGN.md section 2).
//!
//! Callers hold a cloneable [`RouterHandle`] over a bounded command channel. Invariants: every
//! request line written to the child carries a fresh upstream id; a child response is delivered
//! only to the waiter that owns its upstream id, with the client's original id restored; a
//! message related to a request (progress, a server-to-client request) goes only to that
//! request's session; a response for an id no longer in the map is dropped; the router never
//! awaits a slow session or a full child stdin queue (both fail fast).

mod child_side;
pub mod idmap;
mod metrics;
mod requests;
mod server_requests;
pub mod state;
mod upstream;

pub use metrics::{method_label, Direction, Outcome, RouterMetrics, METHODS};
pub use upstream::{initialize_child, InitCache, InitError};

use crate::child::{ExitInfo, SpawnedChild};
use crate::jsonrpc::{self, Message, RequestId};
use crate::metrics::Metrics;
use crate::session::replay::{EventLog, Push};
use crate::session::{SessionKey, Sessions};
use bytes::Bytes;
use futures_util::StreamExt;
use idmap::{IdMap, UpstreamId};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::time::DelayQueue;
use tracing::Instrument;

/// Capacity of the router's command channel, in commands. A full channel makes callers wait
/// (backpressure on HTTP handlers), never the router.
const COMMAND_QUEUE: usize = 4096;

/// Why a request got no response from the child.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// The child is not running (the text says how it ended).
    #[error("the upstream MCP server is not running: {0}")]
    Unavailable(String),
    /// The queue to the child's stdin is full.
    #[error("the queue to the upstream MCP server is full; retry later")]
    Overloaded,
    /// The client reused an id that is still in flight in its session.
    #[error("request id {0} is already in flight in this session")]
    DuplicateId(RequestId),
    /// The request was cancelled before its response arrived.
    #[error("request cancelled: {0}")]
    Cancelled(&'static str),
    /// The client itself cancelled the request: it expects no response (PROTOCOL.md 4.2).
    #[error("request cancelled by the client")]
    CancelledByClient,
    /// No response within the request timeout.
    #[error("no response from the upstream MCP server within {} ms", .0.as_millis())]
    Timeout(Duration),
}

impl RouteError {
    /// The JSON-RPC error code that reports this failure to the client.
    pub fn code(&self) -> i64 {
        match self {
            RouteError::Unavailable(_) => jsonrpc::UPSTREAM_UNAVAILABLE,
            RouteError::Overloaded => jsonrpc::OVERLOADED,
            RouteError::DuplicateId(_) => jsonrpc::INVALID_REQUEST,
            RouteError::Cancelled(_) | RouteError::CancelledByClient => jsonrpc::REQUEST_CANCELLED,
            RouteError::Timeout(_) => jsonrpc::REQUEST_TIMEOUT,
        }
    }
}

/// The child's response to one request (compact JSON with the client's id), or why none came.
pub type Reply = Result<Bytes, RouteError>;

/// A root the bridge announces to the child itself (`--roots`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root {
    /// `file://` URI of the directory.
    pub uri: String,
    /// Display name (the last path component).
    pub name: String,
}

/// How a router treats the sessions it serves.
#[derive(Debug, Clone)]
pub struct RouterOptions {
    /// `Some(key)` in per-session mode: the router serves exactly that session and routes every
    /// server-to-client request to it. `None` for the shared child.
    pub scope: Option<SessionKey>,
    /// Roots answered by the bridge (shared mode; `roots/list` is otherwise refused).
    pub roots: Vec<Root>,
    /// Forward `sampling/createMessage` to the attributed session (shared mode).
    pub forward_sampling: bool,
    /// Forward `elicitation/create` to the attributed session (shared mode).
    pub forward_elicitation: bool,
    /// How long a server-to-client request may wait for the client's answer.
    pub client_request_timeout: Duration,
    /// Cancelled at the very end of shutdown, after the children stopped: the router task then
    /// ends, though handles to it still live in the app state (so the daemon need not wait for
    /// them to be dropped).
    pub stop: tokio_util::sync::CancellationToken,
}

enum Command {
    Request {
        session: SessionKey,
        msg: Message,
        reply: oneshot::Sender<Reply>,
        stream: Option<Arc<EventLog>>,
    },
    Notify {
        session: SessionKey,
        msg: Message,
    },
    ClientResponse {
        session: SessionKey,
        msg: Message,
    },
    Cancel {
        session: SessionKey,
        id: RequestId,
        reason: &'static str,
    },
    Abandon {
        session: SessionKey,
        id: RequestId,
    },
    /// A restarted child replaces the one that exited.
    Attach(SpawnedChild),
    /// The restarted child was re-initialized: restore subscriptions and log level, and tell
    /// sessions to refetch lists with these list-changed notifications.
    Restore(Vec<&'static str>),
    SessionClosed {
        session: SessionKey,
    },
}

/// Cloneable handle to a router task.
#[derive(Clone, Debug)]
pub struct RouterHandle {
    tx: mpsc::Sender<Command>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Command")
    }
}

/// Starts the router for `child` on `tracker`. Returns the handle; the task ends when every
/// handle is dropped.
pub fn start(
    child: SpawnedChild,
    sessions: Arc<Sessions>,
    metrics: Arc<Metrics>,
    options: RouterOptions,
    tracker: &tokio_util::task::TaskTracker,
) -> RouterHandle {
    let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
    let router = Router {
        map: IdMap::new(),
        stdin: child.stdin,
        sessions,
        metrics,
        exited: None,
        pid: child.pid,
        options,
        server_requests: HashMap::new(),
        server_by_child: HashMap::new(),
        next_server_id: 1,
        timeouts: DelayQueue::new(),
        elicitations: HashMap::new(),
        subscriptions: state::Subscriptions::default(),
        tasks: state::TaskOwners::default(),
        child_level: None,
        orphans: HashMap::new(),
        id_prefix: random_prefix(),
        reported_in_flight: 0,
    };
    let handle_metrics = router.metrics.clone();
    tracker.spawn(router.run(rx, child.stdout, child.control.exit()));
    RouterHandle {
        tx,
        metrics: handle_metrics,
    }
}

impl RouterHandle {
    /// A handle to no router: every call fails as if the child had stopped. For tests.
    pub fn detached() -> RouterHandle {
        RouterHandle {
            tx: mpsc::channel(1).0,
            metrics: Arc::default(),
        }
    }

    /// Forwards the request `msg` of `session` to the child and waits up to `timeout` for its
    /// response. Messages related to the request (progress, server-to-client requests) go to
    /// `stream` when given, else to the session's GET stream. On timeout the child gets
    /// `notifications/cancelled`. Cancel safe: if this future is dropped, the routing entry is
    /// released (a late response is then dropped).
    ///
    /// Client requests (not the bridge's own, [`SessionKey::BRIDGE`]) are counted in
    /// `mcp_bridge_requests_total` and `mcp_bridge_request_duration_seconds` and end with a
    /// debug event `request finished` (`duration_ms`, `outcome`) in the caller's span.
    pub async fn call(
        &self,
        session: SessionKey,
        msg: Message,
        timeout: Duration,
        stream: Option<Arc<EventLog>>,
    ) -> Reply {
        let started = std::time::Instant::now();
        let method = method_label(msg.method());
        let id = msg.request_id().cloned().expect("call() takes requests");
        // A child of the caller's span (the session's); message bodies are logged only at trace.
        let span = tracing::debug_span!("request", rpc.method = msg.method(), rpc.id = %id);
        let pending = Waiting {
            session,
            id: id.clone(),
            method,
            started,
        };
        let reply = self
            .route_call(pending, msg, timeout, stream)
            .instrument(span.clone())
            .await;
        if session != SessionKey::BRIDGE {
            let outcome = Outcome::of(&reply, &id);
            if outcome == Outcome::Timeout {
                self.metrics.http.rejected("timeout");
            }
            self.metrics
                .router
                .request_done(method, outcome, started.elapsed());
            span.in_scope(|| {
                tracing::debug!(
                    duration_ms = started.elapsed().as_secs_f64() * 1000.0,
                    outcome = outcome.as_str(),
                    "request finished"
                )
            });
        }
        reply
    }

    async fn route_call(
        &self,
        waiting: Waiting,
        msg: Message,
        timeout: Duration,
        stream: Option<Arc<EventLog>>,
    ) -> Reply {
        let Waiting {
            session,
            id,
            method,
            started,
        } = waiting;
        let (reply, rx) = oneshot::channel();
        let cmd = Command::Request {
            session,
            msg,
            reply,
            stream,
        };
        if self.tx.send(cmd).await.is_err() {
            return Err(RouteError::Unavailable("the router has stopped".into()));
        }
        let mut guard = AbandonGuard {
            tx: &self.tx,
            session,
            id: Some(id),
            method,
            started,
            metrics: &self.metrics,
        };
        let outcome = tokio::time::timeout(timeout, rx).await;
        let id = guard.id.take().expect("set above");
        match outcome {
            Ok(Ok(reply)) => reply,
            Ok(Err(_)) => Err(RouteError::Unavailable("the router has stopped".into())),
            Err(_) => {
                let reason = "timed out in mcp-bridge";
                let _ = self
                    .tx
                    .send(Command::Cancel {
                        session,
                        id,
                        reason,
                    })
                    .await;
                Err(RouteError::Timeout(timeout))
            }
        }
    }

    /// Forwards a client notification (translating `notifications/cancelled` and progress
    /// tokens). Waits only for room in the command queue.
    pub async fn notify(&self, session: SessionKey, msg: Message) {
        let _ = self.tx.send(Command::Notify { session, msg }).await;
    }

    /// Delivers a client's response to a server-to-client request back to the child.
    pub async fn client_response(&self, session: SessionKey, msg: Message) {
        let _ = self.tx.send(Command::ClientResponse { session, msg }).await;
    }

    /// Hands the router a restarted child (shared mode).
    pub async fn attach(&self, child: SpawnedChild) {
        let _ = self.tx.send(Command::Attach(child)).await;
    }

    /// After a restarted child answered `initialize`: re-subscribe, re-set the log level and send
    /// every session the given list-changed notifications.
    pub async fn restore(&self, notifications: Vec<&'static str>) {
        let _ = self.tx.send(Command::Restore(notifications)).await;
    }

    /// Tells the router that `session` ended: its in-flight requests are cancelled at the child,
    /// its subscriptions, log level and pending server-to-client requests are released.
    pub async fn session_closed(&self, session: SessionKey) {
        let _ = self.tx.send(Command::SessionClosed { session }).await;
    }
}

/// Who waits in [`RouterHandle::call`]: the session, the request's id, its method label and
/// when the call began.
struct Waiting {
    session: SessionKey,
    id: RequestId,
    method: &'static str,
    started: std::time::Instant,
}

/// Releases the routing entry of a `call` whose future was dropped before its response.
/// An abandoned client request is counted with outcome `cancelled`.
struct AbandonGuard<'a> {
    tx: &'a mpsc::Sender<Command>,
    session: SessionKey,
    id: Option<RequestId>,
    method: &'static str,
    started: std::time::Instant,
    metrics: &'a Metrics,
}

impl Drop for AbandonGuard<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            let _ = self.tx.try_send(Command::Abandon {
                session: self.session,
                id,
            });
            if self.session != SessionKey::BRIDGE {
                self.metrics.router.request_done(
                    self.method,
                    Outcome::Cancelled,
                    self.started.elapsed(),
                );
                tracing::debug!(outcome = "cancelled", "request abandoned by the client");
            }
        }
    }
}

/// What to do with a response before it goes back to the client.
#[derive(Debug)]
enum After {
    /// Deliver as is.
    Nothing,
    /// A task-augmented request: remember who owns the task it creates.
    TaskCreate,
    /// `tasks/list`: keep only the asking session's tasks.
    TasksList,
    /// The first `resources/subscribe` for `uri`: undo the bookkeeping if the child refuses.
    Subscribed(String),
}

/// One request in flight.
struct Pending {
    reply: oneshot::Sender<Reply>,
    /// The POST's SSE stream, when it has one.
    stream: Option<Arc<EventLog>>,
    /// The client's own progress token (the child saw the upstream id instead).
    progress: Option<Value>,
    after: After,
}

/// A server-to-client request waiting for the client's answer.
#[derive(Debug)]
struct ServerRequest {
    session: SessionKey,
    /// The id the child used.
    child_id: RequestId,
    timeout: tokio_util::time::delay_queue::Key,
}

struct Router {
    map: IdMap<Pending>,
    stdin: mpsc::Sender<Bytes>,
    sessions: Arc<Sessions>,
    metrics: Arc<Metrics>,
    /// How the child ended, once it has.
    exited: Option<String>,
    pid: u32,
    options: RouterOptions,
    /// Server-to-client requests by (session, id the client sees).
    server_requests: HashMap<(SessionKey, RequestId), ServerRequest>,
    /// The same, by the id the child used.
    server_by_child: HashMap<RequestId, (SessionKey, RequestId)>,
    next_server_id: i64,
    timeouts: DelayQueue<(SessionKey, RequestId)>,
    /// URL-mode elicitations by `elicitationId`.
    elicitations: HashMap<String, SessionKey>,
    subscriptions: state::Subscriptions,
    tasks: state::TaskOwners,
    /// The level last sent to the child with `logging/setLevel`.
    child_level: Option<crate::session::LogLevel>,
    /// Requests no one waits for any more (abandoned, cancelled, timed out) that the child may
    /// still be working on, with their session and since when: while any exists, a child's
    /// request cannot be attributed to one session with certainty.
    orphans: HashMap<UpstreamId, (SessionKey, std::time::Instant)>,
    /// Random prefix of the ids the bridge gives server-to-client requests.
    id_prefix: String,
    /// This router's share of `mcp_bridge_requests_in_flight`.
    reported_in_flight: i64,
}

/// 64 random bits as hex, from the operating system's CSPRNG.
fn random_prefix() -> String {
    let mut raw = [0u8; 8];
    getrandom::fill(&mut raw).expect("the operating system CSPRNG is available");
    raw.iter().map(|b| format!("{b:02x}")).collect()
}

/// How long an orphaned request counts as possibly still running at the child.
const ORPHAN_TTL: Duration = Duration::from_secs(600);

type Stdout =
    tokio_util::codec::FramedRead<tokio::process::ChildStdout, crate::jsonrpc::codec::LineCodec>;

impl Router {
    async fn run(
        mut self,
        mut rx: mpsc::Receiver<Command>,
        stdout: Stdout,
        exit: watch::Receiver<Option<ExitInfo>>,
    ) {
        let mut stdout = Some(stdout);
        let mut exit = Some(exit);
        let stop = self.options.stop.clone();
        loop {
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(Command::Attach(child)) => {
                        stdout = Some(child.stdout);
                        exit = Some(child.control.exit());
                        self.attach(child.stdin, child.pid);
                    }
                    Some(cmd) => self.handle_command(cmd),
                    None => break,
                },
                frame = next_frame(&mut stdout), if stdout.is_some() => match frame {
                    Some(Ok(frame)) => self.handle_frame(frame),
                    _ => stdout = None,
                },
                Some(expired) = self.timeouts.next(), if !self.timeouts.is_empty() => {
                    self.handle_client_timeout(expired.into_inner());
                }
                changed = changed(&mut exit), if exit.is_some() => {
                    if let Some(info) = changed {
                        drain_stdout(&mut self, &mut stdout).await;
                        stdout = None;
                        exit = None;
                        self.handle_exit(info);
                    }
                }
                // Only once the child's exit was handled, so its last replies on stdout are
                // delivered first (`stop` comes after the children were stopped).
                _ = stop.cancelled(), if exit.is_none() => break,
            }
            self.report_in_flight();
        }
        self.map = IdMap::new();
        self.report_in_flight();
    }

    /// Adds this router's change in requests in flight to the gauge summed over all routers.
    fn report_in_flight(&mut self) {
        let now = self.map.len() as i64;
        if now != self.reported_in_flight {
            self.metrics
                .router
                .in_flight
                .inc_by(now - self.reported_in_flight);
            self.reported_in_flight = now;
        }
    }

    /// Takes over a restarted child's stdin; everything else the router knows stays.
    fn attach(&mut self, stdin: mpsc::Sender<Bytes>, pid: u32) {
        self.stdin = stdin;
        self.pid = pid;
        self.exited = None;
        self.child_level = None;
    }

    fn handle_command(&mut self, cmd: Command) {
        match cmd {
            Command::Request {
                session,
                msg,
                reply,
                stream,
            } => self.forward_request(session, msg, reply, stream),
            Command::Notify { session, msg } => self.forward_notification(session, msg),
            Command::ClientResponse { session, msg } => self.handle_client_response(session, msg),
            Command::Cancel {
                session,
                id,
                reason,
            } => self.cancel(session, &id, reason),
            Command::Abandon { session, id } => {
                if let Some(up) = self.map.upstream_of(session, &id) {
                    self.map.resolve(up);
                    self.orphan(up, session);
                }
            }
            Command::SessionClosed { session } => self.close_session(session),
            Command::Restore(notifications) => self.restore(notifications),
            Command::Attach(_) => unreachable!("handled by the run loop"),
        }
    }

    /// Remembers a request the child may still be working on although no one waits for it.
    fn orphan(&mut self, up: UpstreamId, session: SessionKey) {
        let now = std::time::Instant::now();
        self.orphans
            .retain(|_, (_, since)| now.duration_since(*since) < ORPHAN_TTL);
        self.orphans.insert(up, (session, now));
    }

    fn close_session(&mut self, session: SessionKey) {
        for (up, entry) in self.map.remove_session(session) {
            self.orphan(up, session);
            let _ = entry
                .payload
                .reply
                .send(Err(RouteError::Cancelled("the session ended")));
            self.send_cancel(up, "client session ended");
        }
        for uri in self.subscriptions.remove_session(session) {
            self.send_bridge_request("resources/unsubscribe", serde_json::json!({ "uri": uri }));
        }
        self.tasks.remove_session(session);
        self.elicitations.retain(|_, s| *s != session);
        self.fail_server_requests_of(session);
        self.update_child_level(Some(session));
    }
}

/// The next frame of the child's stdout. Only polled while `stdout` is `Some`.
async fn next_frame(
    stdout: &mut Option<Stdout>,
) -> Option<std::io::Result<crate::jsonrpc::codec::Frame>> {
    stdout.as_mut()?.next().await
}

/// Waits for the exit watch to change; `Some` once the child has exited. Only polled while
/// `exit` is `Some`.
async fn changed(exit: &mut Option<watch::Receiver<Option<ExitInfo>>>) -> Option<ExitInfo> {
    let rx = exit.as_mut()?;
    if rx.changed().await.is_err() {
        // The waiter is gone without a status: treat as an unknown exit.
        return Some(ExitInfo {
            code: None,
            signal: None,
        });
    }
    *rx.borrow_and_update()
}

async fn drain_stdout(router: &mut Router, stdout: &mut Option<Stdout>) {
    let Some(stdout) = stdout.as_mut() else {
        return;
    };
    // The child has exited; deliver what it wrote before exiting. Grandchildren may hold the
    // pipe open, so this is bounded in time.
    let deadline = tokio::time::sleep(Duration::from_millis(200));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut deadline => break,
            frame = stdout.next() => match frame {
                Some(Ok(frame)) => router.handle_frame(frame),
                _ => break,
            },
        }
    }
}
