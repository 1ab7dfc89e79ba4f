//! Client side of Streamable HTTP for `connect` (PROTOCOL.md sections 2.3 to 2.8 and 7).
//!
//! Owns: the remote session: its `Mcp-Session-Id` (taken from the `initialize` response only),
//! the negotiated `MCP-Protocol-Version` (sent on every request after `initialize`, never on
//! it), the cached `initialize` request, and a generation number that grows with every new
//! session.
//!
//! Recovery: when a POST that carried the session id gets 404 (the remote restarted or expired
//! the session), the cached `initialize` is repeated under a reserved request id
//! (`mcp-bridge-connect-reinit-N`, its answer is not forwarded), `notifications/initialized`
//! follows, and the failed request is sent once more, so the local client's next call simply
//! works. One recovery runs at a time (bounded by `--timeout`); callers that saw the same
//! generation wait for it and then retry. A request whose response stream had already started
//! is never sent again, and responses and notifications of the old session are not resent.
//! Before the new session serves anything else, the local client's log level and resource
//! subscriptions are repeated in it ([`super::restore`]). What else the old session held on
//! the remote is gone: server requests still waiting for an answer, and answers due on the old
//! GET stream.

mod exchange;
mod listen;

use super::http::{body_kind, BodyKind, Failure, Http};
use super::{ConnectError, Context};
use crate::jsonrpc::{Kind, Message, RequestId};
use http::HeaderValue;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// `Mcp-Session-Id` (case-insensitive; spelled as in 2025-03-26).
const SESSION_HEADER: &str = "mcp-session-id";
/// `MCP-Protocol-Version`.
const VERSION_HEADER: &str = "mcp-protocol-version";

/// How long recovery waits for the new session's GET stream to open ahead (some servers send
/// the headers only with the first event); after that the GET stream task opens it itself.
const OPEN_AHEAD_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Why the first `initialize` over Streamable HTTP did not start a session.
#[derive(Debug)]
pub enum StartError {
    /// The POST got 400, 404 or 405 and the transport is `auto`: try HTTP+SSE. Carries why.
    Fallback(String),
    /// Anything else; ends the process.
    Failed(ConnectError),
}

impl From<StartError> for ConnectError {
    fn from(e: StartError) -> ConnectError {
        match e {
            StartError::Fallback(why) => ConnectError::Protocol(why),
            StartError::Failed(e) => e,
        }
    }
}

/// The remote session as requests see it.
#[derive(Clone, Debug, Default)]
struct SessionState {
    /// The session id, when the remote gave one.
    id: Option<HeaderValue>,
    /// The negotiated protocol version, once `initialize` succeeded.
    version: Option<HeaderValue>,
    /// 0 before the first session; +1 for every new one.
    generation: u64,
}

/// Cloneable handle to the Streamable HTTP client.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    cx: Context,
    http: Http,
    session: Mutex<SessionState>,
    /// Announces each new generation (the GET stream reconnects with the new session).
    generation: watch::Sender<u64>,
    /// Held while a recovery runs.
    recovery: tokio::sync::Mutex<()>,
    /// The local client's last successful `initialize`, as sent.
    init: Mutex<Option<Vec<u8>>>,
    /// Requests waiting for their response, by id; cancelling one abandons its POST.
    inflight: Mutex<HashMap<RequestId, CancellationToken>>,
    /// True while the GET stream task runs (it ends on a 405; the next accepted
    /// `notifications/initialized` starts it again).
    listening: AtomicBool,
    /// A GET stream recovery opened for the new session (by its id) before installing it, for
    /// the GET stream task to take over.
    handover: Mutex<Option<(HeaderValue, reqwest::Response)>>,
    /// Counts repeated initializes, for their reserved ids.
    reinits: AtomicU64,
}

impl Client {
    /// Sends the local client's first `initialize` (`raw`, already checked as `message`) and
    /// writes every message of the answer to stdout. Errors: [`StartError::Fallback`] for
    /// 400/404/405 when the transport is `auto`; [`StartError::Failed`] with exit-code kind
    /// otherwise (401/403 auth, no answer unreachable, a bad body protocol).
    pub async fn start(cx: &Context, message: Message, raw: Vec<u8>) -> Result<Client, StartError> {
        let http = Http::new(&cx.config, cx.credentials.clone()).map_err(StartError::Failed)?;
        let client = Client {
            inner: Arc::new(Inner {
                cx: cx.clone(),
                http,
                session: Mutex::new(SessionState::default()),
                generation: watch::channel(0).0,
                recovery: tokio::sync::Mutex::new(()),
                init: Mutex::new(None),
                inflight: Mutex::new(HashMap::new()),
                listening: AtomicBool::new(false),
                handover: Mutex::new(None),
                reinits: AtomicU64::new(0),
            }),
        };
        let url = &cx.config.url;
        let auto = cx.config.transport == super::RemoteTransport::Auto;
        match client.open_session(&message, raw).await {
            Err(f) if auto && matches!(f.status().map(|s| s.as_u16()), Some(400 | 404 | 405)) => {
                Err(StartError::Fallback(format!("the initialize POST got {f}")))
            }
            Err(f) => Err(StartError::Failed(
                f.into_startup_error(&format!("initialize POST to {url}")),
            )),
            Ok(()) => {
                let state = client.session();
                tracing::info!(
                    %url,
                    session = state.id.is_some(),
                    version = state.version.as_ref().and_then(|v| v.to_str().ok()),
                    "connected over Streamable HTTP"
                );
                Ok(client)
            }
        }
    }

    /// A later `initialize` from the local client: a new remote session replaces the old one,
    /// which is ended with DELETE (best effort, in the background). Bounded by `--timeout`;
    /// failures are answered on stdout as JSON-RPC errors.
    pub async fn initialize(&self, message: Message, raw: Vec<u8>) {
        let _no_recovery_meanwhile = self.inner.recovery.lock().await;
        let old = self.session();
        let timeout = self.inner.cx.config.timeout;
        let opened = tokio::time::timeout(timeout, self.open_session(&message, raw))
            .await
            .unwrap_or_else(|_| {
                Err(Failure::Unreachable(format!(
                    "no answer within {timeout:?}"
                )))
            });
        if opened.is_ok() && old.id.is_some() && self.session().generation != old.generation {
            let request = self.with_session(
                self.inner.http.request(http::Method::DELETE, self.url()),
                &old,
            );
            self.inner.cx.tracker.spawn(async move {
                let _ = tokio::time::timeout(timeout, Http::send(request)).await;
            });
        }
        if let Err(f) = opened {
            let text = format!("mcp-bridge connect: initialize failed: {f}");
            super::reply_error(
                &self.inner.cx,
                message.request_id(),
                super::REMOTE_ERROR,
                &text,
            )
            .await;
        }
    }

    /// Forwards one message of the running session. Requests run concurrently; notifications
    /// and responses are posted in order before the next stdin line is read.
    pub async fn send(&self, message: Message, raw: Vec<u8>) {
        match (message.kind(), message.request_id()) {
            (Ok(Kind::Request), Some(id)) => self.spawn_request(id.clone(), raw),
            _ => self.post_in_order(&message, raw).await,
        }
    }

    /// Ends the remote session: DELETE with the session id, bounded by the close budget; 405
    /// and 404 count as ended. Called after the process's stop token was cancelled.
    pub async fn close(self) {
        let state = self.session();
        let Some(id) = state.id.clone() else { return };
        let request = self.with_session(
            self.inner.http.request(http::Method::DELETE, self.url()),
            &state,
        );
        let budget = super::CLOSE_BUDGET.saturating_sub(super::EXIT_WAIT);
        match tokio::time::timeout(budget, Http::send(request)).await {
            Ok(Ok(_)) => tracing::info!("remote session ended (DELETE)"),
            Ok(Err(f)) if matches!(f.status().map(|s| s.as_u16()), Some(404 | 405)) => {
                tracing::info!(status = ?f.status(), "remote session ended")
            }
            Ok(Err(f)) => {
                tracing::warn!(error = %f, session = ?id, "DELETE of the remote session failed")
            }
            Err(_) => tracing::warn!("DELETE of the remote session timed out"),
        }
    }

    fn session(&self) -> SessionState {
        self.inner.session.lock().expect("session lock").clone()
    }

    fn url(&self) -> reqwest::Url {
        self.inner.cx.config.url.clone()
    }

    /// Adds the session id and protocol version of `state` to `request`.
    fn with_session(
        &self,
        mut request: reqwest::RequestBuilder,
        state: &SessionState,
    ) -> reqwest::RequestBuilder {
        if let Some(id) = &state.id {
            request = request.header(SESSION_HEADER, id.clone());
        }
        if let Some(version) = &state.version {
            request = request.header(VERSION_HEADER, version.clone());
        }
        request
    }

    /// POSTs an `initialize` (with no session headers) and installs the session it creates.
    /// The answer goes to stdout unless `forward` is false. A JSON-RPC error answer is
    /// forwarded and leaves the session as it was. Errors: the HTTP or protocol failure.
    async fn open_session(&self, message: &Message, raw: Vec<u8>) -> Result<(), Failure> {
        let id = message
            .request_id()
            .cloned()
            .expect("initialize is a request");
        let (state, answered) = self.initialize_remote(raw.clone(), &id, true).await?;
        if answered {
            *self.inner.init.lock().expect("init lock") = Some(raw);
            self.install(state);
        }
        Ok(())
    }

    /// POSTs `body` (an initialize request with id `id`) without session headers. Returns the
    /// new session's state (generation not yet set) and whether the answer was a success.
    async fn initialize_remote(
        &self,
        body: Vec<u8>,
        id: &RequestId,
        forward: bool,
    ) -> Result<(SessionState, bool), Failure> {
        let request = self.post_request(body, &SessionState::default());
        let response = Http::send(request).await?;
        let session_id = response.headers().get(SESSION_HEADER).cloned();
        if let Some(bad) = session_id.as_ref().filter(|v| !visible_ascii(v.as_bytes())) {
            return Err(Failure::Protocol(format!(
                "the Mcp-Session-Id {bad:?} has characters outside 0x21-0x7E"
            )));
        }
        let answer = self.deliver(response, id, forward).await?.ok_or_else(|| {
            Failure::Protocol("the initialize response ended without an answer".into())
        })?;
        let version = negotiated_version(&answer);
        let state = SessionState {
            id: session_id,
            version: version.clone(),
            generation: 0,
        };
        Ok((state, version.is_some()))
    }

    /// Makes `state` the current session under the next generation and announces it.
    fn install(&self, mut state: SessionState) {
        self.drop_handover_except(state.id.as_ref());
        let mut current = self.inner.session.lock().expect("session lock");
        state.generation = current.generation + 1;
        let generation = state.generation;
        *current = state;
        drop(current);
        self.inner.generation.send_replace(generation);
    }

    /// Replaces a session the remote forgot (it answered 404 to generation `seen`); see the
    /// module doc. Returns at once when another caller already replaced it. Errors: the
    /// repeated initialize failed or took longer than `--timeout` (waiting for another
    /// caller's recovery included).
    async fn recover(&self, seen: u64) -> Result<(), Failure> {
        let timeout = self.inner.cx.config.timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        let result = tokio::time::timeout_at(deadline, self.recover_unbounded(seen, deadline))
            .await
            .unwrap_or_else(|_| {
                Err(Failure::Unreachable(format!(
                    "no answer within {timeout:?}"
                )))
            });
        if result.is_err() {
            self.drop_handover_except(self.session().id.as_ref());
        }
        result
    }

    /// The recovery itself; its optional steps (the stream opened ahead, the repeated setup)
    /// keep within shares of the time left before `deadline`, so they cannot fail it.
    async fn recover_unbounded(
        &self,
        seen: u64,
        deadline: tokio::time::Instant,
    ) -> Result<(), Failure> {
        let _one_at_a_time = self.inner.recovery.lock().await;
        if self.session().generation != seen {
            return Ok(());
        }
        if self.inner.cx.stop.is_cancelled() {
            return Err(Failure::Protocol("the session is ending".into()));
        }
        let init = self.inner.init.lock().expect("init lock").clone();
        let init = init.ok_or_else(|| Failure::Protocol("no initialize to repeat".into()))?;
        let message = Message::parse(&init).map_err(|e| Failure::Protocol(e.to_string()))?;
        let n = self.inner.reinits.fetch_add(1, Ordering::Relaxed) + 1;
        let id = super::reinit_id(n);
        let (state, ok) = self
            .initialize_remote(message.to_json_with_id(Some(&id)), &id, false)
            .await?;
        if !ok {
            return Err(Failure::Protocol(
                "the remote refused the repeated initialize".into(),
            ));
        }
        let initialized = super::INITIALIZED.to_vec();
        Http::send(self.post_request(initialized, &state)).await?;
        let left = || deadline.saturating_duration_since(tokio::time::Instant::now());
        self.open_stream_ahead(&state, (left() / 4).min(OPEN_AHEAD_WAIT))
            .await;
        let restored = self.restore_setup(&state, n, left() / 2).await;
        self.install(state);
        tracing::warn!(
            reinit = n,
            restored,
            "the remote no longer knew the session (HTTP 404); opened a new one and carried on"
        );
        Ok(())
    }

    /// When the GET stream task runs, opens the new session's GET stream now, before the
    /// setup is repeated and the session installed, and leaves it for the task to take over:
    /// so a server message for the new session (such as the update of a resource just
    /// subscribed again) cannot arrive before there is a stream to carry it. Best effort: a
    /// refusal or failure leaves the task to open the stream itself.
    async fn open_stream_ahead(&self, state: &SessionState, wait: std::time::Duration) {
        let Some(id) = state.id.clone() else { return };
        if !self.inner.listening.load(Ordering::SeqCst) {
            return;
        }
        let opened = tokio::time::timeout(wait, Http::send(self.get_request(state, None)));
        match opened
            .await
            .unwrap_or_else(|_| Err(Failure::Unreachable("no headers yet".into())))
        {
            Ok(response) if body_kind(&response).ok() == Some(BodyKind::EventStream) => {
                *self.inner.handover.lock().expect("handover lock") = Some((id, response));
            }
            Ok(response) => {
                tracing::debug!(status = %response.status(), "no GET stream opened ahead")
            }
            Err(f) => tracing::debug!(error = %f, "no GET stream opened ahead"),
        }
    }

    /// The GET stream [`Client::open_stream_ahead`] opened for the session `state`, if any.
    /// One opened for another session stays (it may be for the session being installed).
    fn take_handover(&self, state: &SessionState) -> Option<reqwest::Response> {
        let mut handover = self.inner.handover.lock().expect("handover lock");
        match handover.as_ref() {
            Some((id, _)) if state.id.as_ref() == Some(id) => handover.take().map(|(_, r)| r),
            _ => None,
        }
    }

    /// Drops a stream opened ahead for any session but `keep` (a failed recovery's, or a
    /// replaced session's), closing its connection.
    fn drop_handover_except(&self, keep: Option<&HeaderValue>) {
        let mut handover = self.inner.handover.lock().expect("handover lock");
        if handover.as_ref().is_some_and(|(id, _)| Some(id) != keep) {
            *handover = None;
        }
    }

    /// Repeats the local client's setup (see [`super::restore`]) in the new session `state`,
    /// one request at a time, before any other request uses it, within `budget` in all. A
    /// refusal is logged and the rest go on; a failed exchange (or the budget running out)
    /// ends the attempt: the session works without them. Returns how many were accepted.
    async fn restore_setup(
        &self,
        state: &SessionState,
        n: u64,
        budget: std::time::Duration,
    ) -> usize {
        let mut restored = 0;
        let all = async {
            for (id, raw) in self.inner.cx.setup.requests(n) {
                let answer = async {
                    let response = Http::send(self.post_request(raw, state)).await?;
                    self.deliver(response, &id, false).await?.ok_or_else(|| {
                        Failure::Protocol("the answer did not come with the POST".into())
                    })
                };
                let answer = answer.await;
                let failed = answer.is_err();
                restored += usize::from(super::restore::report(&id, answer));
                if failed {
                    return;
                }
            }
        };
        if tokio::time::timeout(budget, all).await.is_err() {
            tracing::warn!("repeating the client's setup in the new session took too long; going on without the rest");
        }
        restored
    }

    /// Starts the GET stream once, after `notifications/initialized` was accepted.
    fn start_listening(&self) {
        if !self.inner.listening.swap(true, Ordering::SeqCst) {
            let this = self.clone();
            self.inner
                .cx
                .tracker
                .spawn(async move { this.listen().await });
        }
    }
}

/// `result.protocolVersion` of an initialize answer, as a header value.
fn negotiated_version(answer: &[u8]) -> Option<HeaderValue> {
    let value: serde_json::Value = serde_json::from_slice(answer).ok()?;
    let version = value.get("result")?.get("protocolVersion")?.as_str()?;
    HeaderValue::from_str(version).ok()
}

/// True when every byte is visible ASCII (0x21-0x7E), as session ids must be.
fn visible_ascii(bytes: &[u8]) -> bool {
    !bytes.is_empty() && bytes.iter().all(|b| (0x21..=0x7e).contains(b))
}
