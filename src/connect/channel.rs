//! Transports with one long-lived connection per session: HTTP+SSE (a GET stream plus POSTs to
//! the announced endpoint, PROTOCOL.md section 2.1) and WebSocket (section 6).
//!
//! Owns: the connection actor. Messages from stdin are queued to the connection's sender task;
//! messages from the connection go to stdout. Neither transport can resume, so when the
//! connection drops the requests still waiting get a JSON-RPC error, and the actor reconnects
//! (backing off 1 s × 1.5ⁿ up to [`crate::connect::MAX_BACKOFF`]), repeats the cached `initialize` under a reserved
//! id, sends `notifications/initialized` and repeats the client's log level and resource
//! subscriptions ([`super::restore`]), so later requests work without the local client
//! noticing.

use super::http::Failure;
use super::{legacy, ws, ConnectError, Context, Inbound};
use crate::jsonrpc::{Kind as MessageKind, Message, RequestId};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// Messages from stdin that may wait for the actor.
const INBOX: usize = 256;
/// Messages that may wait for a connection's sender task.
pub(super) const OUTBOX: usize = 256;

/// Which connection transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// HTTP+SSE (MCP 2024-11-05).
    Sse,
    /// WebSocket, subprotocol `mcp`.
    Ws,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Sse => "HTTP+SSE",
            Kind::Ws => "WebSocket",
        }
    }
}

/// One message for the remote, with its id when it is a request.
#[derive(Debug)]
pub(super) struct Outgoing {
    pub id: Option<RequestId>,
    pub raw: Vec<u8>,
    /// Told whether sending worked (for the `initialize`, whose failure decides the exit code).
    pub ack: Option<tokio::sync::oneshot::Sender<Result<(), Failure>>>,
}

/// Requests sent and not yet answered, shared with the sender tasks (which answer a request
/// themselves when sending it fails, and remove it here so it is answered once).
pub(super) type Pending = Arc<Mutex<HashSet<RequestId>>>;

/// The receiving half of a connection.
pub(super) enum Incoming {
    Sse(Box<legacy::Receiver>),
    Ws(ws::Receiver),
}

impl Incoming {
    /// The next message's JSON, or `None` when the connection ended. Cancel safe.
    async fn next(&mut self) -> Result<Option<Vec<u8>>, Failure> {
        match self {
            Incoming::Sse(r) => r.next().await,
            Incoming::Ws(r) => r.next().await,
        }
    }
}

/// An open connection: a queue to its sender task, and its receiving half.
pub(super) struct Connection {
    pub outbox: mpsc::Sender<Outgoing>,
    pub incoming: Incoming,
}

async fn open(cx: &Context, kind: Kind, pending: &Pending) -> Result<Connection, Failure> {
    match kind {
        Kind::Sse => legacy::open(cx, pending.clone()).await,
        Kind::Ws => ws::open(cx, pending.clone()).await,
    }
}

/// Reports how sending one message went: to its `ack`, and for a failed request as a JSON-RPC
/// error to the local client, once (only while it is still pending).
pub(super) async fn settle(
    cx: &Context,
    pending: &Pending,
    id: Option<RequestId>,
    ack: Option<tokio::sync::oneshot::Sender<Result<(), Failure>>>,
    result: Result<(), Failure>,
) {
    let failure = result
        .as_ref()
        .err()
        .map(|f| format!("mcp-bridge connect: {f}"));
    if let Some(ack) = ack {
        let _ = ack.send(result);
    }
    let Some(text) = failure else { return };
    let owed = id.filter(|id| pending.lock().expect("pending lock").remove(id));
    if let Some(id) = owed {
        super::reply_error(cx, Some(&id), super::REMOTE_ERROR, &text).await;
    }
}

/// Handle to the connection actor.
pub struct Handle {
    inbox: mpsc::Sender<Outgoing>,
    /// The actor's pending requests: a cancelled one is no longer owed an error.
    pending: Pending,
}

impl Handle {
    /// Connects, sends the local client's `initialize` (`raw`) and forwards everything up to
    /// and including its answer, then starts the actor. Errors: 401/403 ([`ConnectError::Auth`]),
    /// no answer ([`ConnectError::Unreachable`]), a remote that does not speak the transport
    /// ([`ConnectError::Protocol`]).
    pub async fn start(
        cx: &Context,
        kind: Kind,
        message: Message,
        raw: Vec<u8>,
    ) -> Result<Handle, ConnectError> {
        let url = &cx.config.url;
        let pending: Pending = Arc::default();
        let startup =
            |f: Failure| f.into_startup_error(&format!("{} connection to {url}", kind.name()));
        let mut conn = open(cx, kind, &pending).await.map_err(startup)?;
        let id = message
            .request_id()
            .cloned()
            .expect("initialize is a request");
        let answer = request(cx, &mut conn, &id, raw.clone(), true)
            .await
            .map_err(startup)?;
        tracing::info!(%url, transport = kind.name(), "connected");
        let (inbox, rx) = mpsc::channel(INBOX);
        let mut actor = Actor {
            cx: cx.clone(),
            kind,
            pending: pending.clone(),
            init: None,
            reinits: 0,
        };
        if super::is_success(&answer) {
            actor.init = Some(raw);
        }
        cx.tracker.spawn(actor.run(conn, rx));
        Ok(Handle { inbox, pending })
    }

    /// Queues one message from the local client.
    pub async fn send(&self, message: Message, raw: Vec<u8>) {
        let id = match message.kind() {
            Ok(MessageKind::Request) => message.request_id().cloned(),
            _ => None,
        };
        if let Some(cancelled) = super::cancelled_request(&message) {
            self.pending
                .lock()
                .expect("pending lock")
                .remove(&cancelled);
        }
        let ack = None;
        let _ = self.inbox.send(Outgoing { id, raw, ack }).await;
    }

    /// Nothing to end remotely: closing the connection ends the session.
    pub async fn close(self) {}
}

/// Sends `raw` (a request with id `id`: the `initialize`, or a setup request repeated after a
/// reconnect) and reads until its answer; messages before it are forwarded, the answer only
/// when `forward`. Returns the answer's JSON. Errors: sending failed, or the connection closed.
async fn request(
    cx: &Context,
    conn: &mut Connection,
    id: &RequestId,
    raw: Vec<u8>,
    forward: bool,
) -> Result<Vec<u8>, Failure> {
    let closed = || Failure::Unreachable("the connection closed before the answer".into());
    let (ack, mut acked) = tokio::sync::oneshot::channel();
    let ack = Some(ack);
    conn.outbox
        .send(Outgoing { id: None, raw, ack })
        .await
        .map_err(|_| closed())?;
    let mut sent = false;
    loop {
        // A refused POST (401, 404...) fails at once rather than after --timeout.
        let data = tokio::select! {
            biased;
            result = &mut acked, if !sent => {
                sent = true;
                match result {
                    Ok(Err(f)) => return Err(f),
                    _ => continue,
                }
            }
            data = conn.incoming.next() => data,
        };
        let data = data?.ok_or_else(closed)?;
        let Some(inbound) = Inbound::parse(data) else {
            continue;
        };
        if let Some(answer) = inbound.deliver(&cx.out, id, forward).await {
            return Ok(answer);
        }
    }
}

struct Actor {
    cx: Context,
    kind: Kind,
    pending: Pending,
    /// The local client's successful `initialize`, repeated after a reconnect.
    init: Option<Vec<u8>>,
    reinits: u64,
}

impl Actor {
    async fn run(mut self, mut conn: Connection, mut inbox: mpsc::Receiver<Outgoing>) {
        loop {
            tokio::select! {
                message = inbox.recv() => match message {
                    Some(message) => self.outgoing(&conn, message).await,
                    None => return,
                },
                data = conn.incoming.next() => match data {
                    Ok(Some(data)) => self.incoming(data).await,
                    Ok(None) => match self.replace(None).await {
                        Some(new) => conn = new,
                        None => return,
                    },
                    Err(f) => match self.replace(Some(f)).await {
                        Some(new) => conn = new,
                        None => return,
                    },
                },
                _ = self.cx.stop.cancelled() => return,
            }
        }
    }

    async fn outgoing(&mut self, conn: &Connection, message: Outgoing) {
        if let Some(id) = &message.id {
            self.pending
                .lock()
                .expect("pending lock")
                .insert(id.clone());
        }
        if conn.outbox.send(message).await.is_err() {
            tracing::debug!(
                "the connection's sender stopped; the message waits for the reconnect error"
            );
        }
    }

    async fn incoming(&mut self, data: Vec<u8>) {
        let Some(inbound) = Inbound::parse(data) else {
            return;
        };
        if let Some(id) = &inbound.response_to {
            self.pending.lock().expect("pending lock").remove(id);
        }
        inbound.forward(&self.cx.out).await;
    }

    /// The connection ended: answers the waiting requests, then reconnects (until it works or
    /// the process stops, `None`) and repeats the `initialize`.
    async fn replace(&mut self, why: Option<Failure>) -> Option<Connection> {
        let why = why.map_or("the remote closed the connection".to_string(), |f| {
            f.to_string()
        });
        tracing::warn!(transport = self.kind.name(), reason = %why, "connection lost; reconnecting");
        let waiting: Vec<RequestId> = self.pending.lock().expect("pending lock").drain().collect();
        for id in waiting {
            let text = format!("mcp-bridge connect: the connection to the remote was lost before it answered ({why}); the request may or may not have run");
            super::reply_error(&self.cx, Some(&id), super::REMOTE_ERROR, &text).await;
        }
        let mut failures = 0;
        let stop = self.cx.stop.clone();
        loop {
            let delay = match failures {
                0 => std::time::Duration::ZERO,
                n => super::backoff(n),
            };
            let attempt = async {
                tokio::time::sleep(delay).await;
                self.reconnect().await
            };
            let result = tokio::select! {
                result = attempt => result,
                _ = stop.cancelled() => return None,
            };
            match result {
                Ok(conn) => return Some(conn),
                Err(f) => {
                    failures += 1;
                    if f.is_auth() {
                        self.cx.credentials.renew().await;
                    }
                    tracing::debug!(error = %f, attempt = failures, "reconnect failed");
                }
            }
        }
    }

    async fn reconnect(&mut self) -> Result<Connection, Failure> {
        let mut conn = open(&self.cx, self.kind, &self.pending).await?;
        let Some(init) = &self.init else {
            return Ok(conn);
        };
        let message = Message::parse(init).map_err(|e| Failure::Protocol(e.to_string()))?;
        self.reinits += 1;
        let id = super::reinit_id(self.reinits);
        let raw = message.to_json_with_id(Some(&id));
        let answer = tokio::time::timeout(
            self.cx.config.timeout,
            request(&self.cx, &mut conn, &id, raw, false),
        )
        .await
        .map_err(|_| Failure::Unreachable("no answer to the repeated initialize".into()))??;
        if !super::is_success(&answer) {
            return Err(Failure::Protocol(
                "the remote refused the repeated initialize".into(),
            ));
        }
        let initialized = super::INITIALIZED.to_vec();
        let _ = conn
            .outbox
            .send(Outgoing {
                id: None,
                raw: initialized,
                ack: None,
            })
            .await;
        let mut restored = 0;
        for (id, raw) in self.cx.setup.requests(self.reinits) {
            let answer = tokio::time::timeout(
                self.cx.config.timeout,
                request(&self.cx, &mut conn, &id, raw, false),
            )
            .await
            .unwrap_or_else(|_| Err(Failure::Unreachable("no answer within --timeout".into())));
            let failed = answer.is_err();
            restored += usize::from(super::restore::report(&id, answer));
            if failed {
                // The connection itself failed: its reader reports that next.
                break;
            }
        }
        tracing::warn!(
            transport = self.kind.name(),
            restored,
            "reconnected and opened a new session"
        );
        Ok(conn)
    }
}
