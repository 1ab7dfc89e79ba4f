//! The router: the one task that owns the shared child's stdin queue, stdout stream and the
//! [`IdMap`] of requests in flight (DESIGN.md section 2).
//!
//! Callers hold a cloneable [`RouterHandle`] over a bounded command channel. Invariants: every
//! request line written to the child carries a fresh upstream id; a child response is delivered
//! only to the waiter that owns its upstream id, with the client's original id restored; a
//! response for an id no longer in the map (cancelled, timed out, abandoned) is dropped; the
//! router never awaits a slow session or a full child stdin queue (both fail fast).

pub mod idmap;
mod upstream;

pub use upstream::{initialize_child, InitCache, InitError};

use crate::child::{ExitInfo, SpawnedChild};
use crate::jsonrpc::{self, Message, RequestId};
use crate::metrics::Metrics;
use crate::session::{SessionKey, Sessions};
use bytes::Bytes;
use futures_util::StreamExt;
use idmap::{IdMap, UpstreamId};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

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
            RouteError::Cancelled(_) => jsonrpc::REQUEST_CANCELLED,
            RouteError::Timeout(_) => jsonrpc::REQUEST_TIMEOUT,
        }
    }
}

/// The child's response to one request (compact JSON with the client's id), or why none came.
pub type Reply = Result<Bytes, RouteError>;

enum Command {
    Request {
        session: SessionKey,
        msg: Message,
        reply: oneshot::Sender<Reply>,
    },
    Notify {
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
    SessionClosed {
        session: SessionKey,
    },
}

/// Cloneable handle to the router task.
#[derive(Clone, Debug)]
pub struct RouterHandle {
    tx: mpsc::Sender<Command>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Command")
    }
}

/// Starts the router for `child` on `tracker`. Child notifications are offered to every session
/// in `sessions`. Returns the handle; the task ends when every handle is dropped.
pub fn start(
    child: SpawnedChild,
    sessions: Arc<Sessions>,
    metrics: Arc<Metrics>,
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
    };
    tracker.spawn(router.run(rx, child.stdout, child.control.exit()));
    RouterHandle { tx }
}

impl RouterHandle {
    /// Forwards the request `msg` of `session` to the child and waits up to `timeout` for its
    /// response. On timeout the child gets `notifications/cancelled`. Cancel safe: if this future
    /// is dropped, the routing entry is released (a late response is then dropped).
    pub async fn call(&self, session: SessionKey, msg: Message, timeout: Duration) -> Reply {
        let id = msg.request_id().cloned().expect("call() takes requests");
        let (reply, rx) = oneshot::channel();
        let cmd = Command::Request {
            session,
            msg,
            reply,
        };
        if self.tx.send(cmd).await.is_err() {
            return Err(RouteError::Unavailable("the router has stopped".into()));
        }
        let mut guard = AbandonGuard {
            tx: &self.tx,
            session,
            id: Some(id),
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

    /// Forwards a client notification (translating `notifications/cancelled`). Waits only for
    /// room in the command queue.
    pub async fn notify(&self, session: SessionKey, msg: Message) {
        let _ = self.tx.send(Command::Notify { session, msg }).await;
    }

    /// Tells the router that `session` ended: its in-flight requests are cancelled at the child.
    pub async fn session_closed(&self, session: SessionKey) {
        let _ = self.tx.send(Command::SessionClosed { session }).await;
    }
}

/// Releases the routing entry of a `call` whose future was dropped before its response.
struct AbandonGuard<'a> {
    tx: &'a mpsc::Sender<Command>,
    session: SessionKey,
    id: Option<RequestId>,
}

impl Drop for AbandonGuard<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            let _ = self.tx.try_send(Command::Abandon {
                session: self.session,
                id,
            });
        }
    }
}

struct Router {
    map: IdMap<oneshot::Sender<Reply>>,
    stdin: mpsc::Sender<Bytes>,
    sessions: Arc<Sessions>,
    metrics: Arc<Metrics>,
    /// How the child ended, once it has.
    exited: Option<String>,
    pid: u32,
}

type Stdout =
    tokio_util::codec::FramedRead<tokio::process::ChildStdout, crate::jsonrpc::codec::LineCodec>;

impl Router {
    async fn run(
        mut self,
        mut rx: mpsc::Receiver<Command>,
        mut stdout: Stdout,
        mut exit: watch::Receiver<Option<ExitInfo>>,
    ) {
        let mut stdout_open = true;
        loop {
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(cmd) => self.handle_command(cmd),
                    None => break,
                },
                frame = stdout.next(), if stdout_open => match frame {
                    Some(Ok(frame)) => self.handle_frame(frame),
                    _ => stdout_open = false,
                },
                _ = exit.changed(), if self.exited.is_none() => {
                    let info = *exit.borrow_and_update();
                    if let Some(info) = info {
                        drain_stdout(&mut self, &mut stdout, stdout_open).await;
                        stdout_open = false;
                        self.handle_exit(info);
                    }
                }
            }
        }
    }

    fn handle_command(&mut self, cmd: Command) {
        match cmd {
            Command::Request {
                session,
                msg,
                reply,
            } => self.forward_request(session, msg, reply),
            Command::Notify { session, msg } => self.forward_notification(session, msg),
            Command::Cancel {
                session,
                id,
                reason,
            } => self.cancel(session, &id, reason),
            Command::Abandon { session, id } => {
                if let Some(up) = self.map.upstream_of(session, &id) {
                    self.map.resolve(up);
                }
            }
            Command::SessionClosed { session } => {
                for (up, entry) in self.map.remove_session(session) {
                    let _ = entry
                        .payload
                        .send(Err(RouteError::Cancelled("the session ended")));
                    self.send_cancel(up, "client session ended");
                }
            }
        }
        self.metrics.requests_in_flight.set(self.map.len() as i64);
    }

    fn forward_request(
        &mut self,
        session: SessionKey,
        msg: Message,
        reply: oneshot::Sender<Reply>,
    ) {
        if let Some(how) = &self.exited {
            let _ = reply.send(Err(RouteError::Unavailable(how.clone())));
            return;
        }
        let id = msg.request_id().cloned().expect("requests carry ids");
        if self.map.upstream_of(session, &id).is_some() {
            let _ = reply.send(Err(RouteError::DuplicateId(id)));
            return;
        }
        let up = self
            .map
            .allocate(session, id, reply)
            .expect("checked for duplicates above");
        tracing::trace!(
            rpc.method = msg.method(),
            upstream.id = up.0,
            "forwarding request"
        );
        if let Err(err) = self.write_line(msg.to_json_with_id(Some(&up))) {
            if let Some(entry) = self.map.resolve(up) {
                let _ = entry.payload.send(Err(err));
            }
        }
    }
}

async fn drain_stdout(router: &mut Router, stdout: &mut Stdout, open: bool) {
    if !open {
        return;
    }
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

mod child_side;
