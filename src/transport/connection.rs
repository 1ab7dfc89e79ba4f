//! What the connection transports (legacy HTTP+SSE and WebSocket) share: a session that exists
//! from the moment the connection opens, before `initialize`, and whose every server message,
//! responses included, goes down that one connection. Messages are handled with the same
//! router, initialize cache and per-session children as Streamable HTTP (DESIGN.md section 3).
//!
//! Invariants: a connection session is initialized at most once; before that only `ping` is
//! answered; requests run concurrently and their responses are queued on the session's bounded
//! outbox (a full outbox closes the connection, counted as a slow consumer); when the connection
//! closes the session ends and its in-flight requests are cancelled at the child.

use super::sse;
use super::streamable_http::initialize::{self, Opened};
use crate::app::AppState;
use crate::error::HttpError;
use crate::jsonrpc::{self, Kind, Message, RequestId};
use crate::protocol;
use crate::router::{RouteError, RouterHandle};
use crate::session::{ClientCaps, Delivery, NewSession, Session, SessionKey, Transport};
use std::sync::Arc;
use tracing::Instrument;

/// Registers the session of a new connection. Errors: 503 at the session limit or while
/// shutting down.
pub fn open(state: &AppState, transport: Transport) -> Result<Arc<Session>, HttpError> {
    if state.shutdown.is_cancelled() {
        return Err(HttpError::unavailable(
            jsonrpc::UPSTREAM_UNAVAILABLE,
            "Service Unavailable: mcp-bridge is shutting down",
            1,
        ));
    }
    let new = NewSession {
        key: state.sessions.next_key(),
        version: protocol::LATEST_VERSION,
        caps: ClientCaps::default(),
        router: state.router.clone().unwrap_or_else(RouterHandle::detached),
        child: None,
        transport,
        initialized: false,
    };
    let session = state
        .sessions
        .insert(new)
        .map_err(|e| initialize::too_many(&e.to_string()))?;
    tracing::debug!(session.id = %session.id, transport = transport.name(), "connection session opened");
    Ok(session)
}

/// Ends the connection's session (the connection closed), unless it already ended.
pub fn close(state: &Arc<AppState>, key: SessionKey) {
    let Some(session) = state.sessions.by_key(key) else {
        return;
    };
    let state = state.clone();
    state
        .tracker
        .clone()
        .spawn(async move { state.end_session(&session, "connection closed").await });
}

/// Ends the session when dropped: held by the connection's stream, so that a client going away
/// ends its session.
pub struct CloseOnDrop {
    state: Arc<AppState>,
    key: SessionKey,
}

impl CloseOnDrop {
    /// A guard for session `key`.
    pub fn new(state: Arc<AppState>, key: SessionKey) -> Self {
        CloseOnDrop { state, key }
    }
}

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        close(&self.state, self.key);
    }
}

/// Handles one client message of connection session `key`; answers go down the connection.
/// `child_env` holds the `--session-env` variables taken when the connection opened.
pub fn on_message(
    state: &Arc<AppState>,
    key: SessionKey,
    msg: Message,
    child_env: Vec<(String, String)>,
) {
    let Some(session) = state.sessions.by_key(key) else {
        return;
    };
    let kind = msg.kind().expect("validated by parse");
    match kind {
        Kind::Request => {
            let state = state.clone();
            let span = session.span.clone();
            state.tracker.clone().spawn(
                async move { request(&state, &session, msg, child_env).await }.instrument(span),
            );
        }
        Kind::Notification if !session.initialized => {}
        Kind::Notification
            if msg.method() == "notifications/initialized" && session.child.is_none() => {}
        Kind::Notification => {
            let router = session.router.clone();
            state
                .tracker
                .spawn(async move { router.notify(key, msg).await });
        }
        Kind::Response => {
            let router = session.router.clone();
            state
                .tracker
                .spawn(async move { router.client_response(key, msg).await });
        }
    }
}

async fn request(
    state: &Arc<AppState>,
    session: &Session,
    msg: Message,
    child_env: Vec<(String, String)>,
) {
    let id = msg.request_id().cloned().expect("requests carry ids");
    let key = session.key;
    if msg.method() == "initialize" {
        return initialize(state, session, msg, child_env).await;
    }
    if !session.initialized {
        let body = match msg.method() {
            "ping" => jsonrpc::result_response(
                &id,
                &serde_json::value::RawValue::from_string("{}".into()).expect("valid"),
            ),
            _ => jsonrpc::error_response(
                Some(&id),
                jsonrpc::INVALID_REQUEST,
                "send initialize first: this session is not initialized",
            ),
        };
        return send(state, key, &body);
    }
    let Some(_slot) = session.admit(state.config.max_in_flight) else {
        state.metrics.http.rejected("limit");
        let text = format!(
            "too many requests in flight for this session (--max-in-flight {})",
            state.config.max_in_flight
        );
        return send(
            state,
            key,
            &jsonrpc::error_response(Some(&id), jsonrpc::OVERLOADED, &text),
        );
    };
    if let Err(e) = state.upstream_ready(session.child.is_some()).await {
        return send(
            state,
            key,
            &jsonrpc::error_response(Some(&id), e.code(), &e.to_string()),
        );
    }
    match session
        .router
        .call(key, msg, state.config.request_timeout, None)
        .await
    {
        Ok(body) => send(state, key, &body),
        Err(RouteError::CancelledByClient) => {}
        Err(e) => send(
            state,
            key,
            &jsonrpc::error_response(Some(&id), e.code(), &e.to_string()),
        ),
    }
}

async fn initialize(
    state: &Arc<AppState>,
    session: &Session,
    msg: Message,
    child_env: Vec<(String, String)>,
) {
    let id: RequestId = msg.request_id().cloned().expect("requests carry ids");
    if session.initialized {
        let text =
            "this session is already initialized; open a new connection to start a new session";
        return send(
            state,
            session.key,
            &jsonrpc::error_response(Some(&id), jsonrpc::INVALID_REQUEST, text),
        );
    }
    let body = match initialize::open(msg, session.key, session.transport, child_env, state).await {
        Ok(Opened::Session(new, body)) => {
            let child = new.child.clone();
            if let (None, Some(child)) = (state.sessions.establish(new), child) {
                // The connection closed while its child was starting.
                state
                    .tracker
                    .spawn(async move { child.stop(crate::shutdown::CHILD_STOP_STEP).await });
            }
            body
        }
        Ok(Opened::NoSession(body)) => body,
        Err(e) => jsonrpc::error_response(Some(&id), e.code, &e.message).into(),
    };
    send(state, session.key, &body);
}

/// Queues one message for the connection of session `key`.
pub fn send(state: &AppState, key: SessionKey, message: &[u8]) {
    let Some(session) = state.sessions.by_key(key) else {
        return;
    };
    if session.deliver(sse::message_event(message)) == Delivery::SlowConsumer {
        tracing::warn!(session.id = %session.id, "connection closed: the client is not reading (slow consumer)");
        state.metrics.sessions.slow_consumers.inc();
    }
}
