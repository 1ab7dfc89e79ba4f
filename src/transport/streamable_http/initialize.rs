//! `initialize`: what opens (or, for connection transports, establishes) a session. Shared mode
//! answers from the child's cached `InitializeResult` with a per-session protocol version;
//! per-session mode starts the session's own child and passes the client's `initialize` through
//! to it (DESIGN.md section 2). Used by every transport.

use super::SESSION_HEADER;
use crate::app::{AppState, UpstreamState};
use crate::child::{self, ChildSlot, ChildSpec};
use crate::error::HttpError;
use crate::jsonrpc::{self, Message};
use crate::protocol;
use crate::router::{self, InitCache, RouterHandle, RouterOptions};
use crate::session::{ClientCaps, NewSession, Session, SessionKey, Transport};
use crate::shutdown::CHILD_STOP_STEP;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use serde_json::Value;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// The outcome of an `initialize`.
pub enum Opened {
    /// A session to register under the key it was opened for, and the response body.
    Session(NewSession, Bytes),
    /// A response with no session: stateless mode, or a child that refused `initialize`.
    NoSession(Bytes),
}

/// What the client asked for in `initialize` params.
fn requested(msg: &Message) -> (Option<String>, ClientCaps) {
    let params: Option<Value> = msg
        .params
        .as_deref()
        .and_then(|p| serde_json::from_str(p.get()).ok());
    let version = params
        .as_ref()
        .and_then(|p| p["protocolVersion"].as_str())
        .map(str::to_string);
    (version, ClientCaps::from_initialize(params.as_ref()))
}

/// Answers `msg` (an `initialize` request) for the session that will have `key`, speaking
/// `transport`. `child_env` holds the `--session-env` variables for a per-session child.
/// Errors: 503 when the child is not ready, the session or child limit is reached, or the
/// session's child cannot be started.
pub async fn open(
    msg: Message,
    key: SessionKey,
    transport: Transport,
    child_env: Vec<(String, String)>,
    state: &AppState,
) -> Result<Opened, HttpError> {
    match &state.router {
        Some(router) => {
            // Answered from the cache, so counted here rather than by the router.
            let started = std::time::Instant::now();
            let opened = open_shared(msg, key, transport, router.clone(), state).await;
            let outcome = match &opened {
                Ok(_) => crate::router::Outcome::Ok,
                Err(_) => crate::router::Outcome::Unavailable,
            };
            state
                .metrics
                .router
                .request_done("initialize", outcome, started.elapsed());
            opened
        }
        None => open_own_child(msg, key, transport, child_env, state).await,
    }
}

async fn open_shared(
    msg: Message,
    key: SessionKey,
    transport: Transport,
    router: RouterHandle,
    state: &AppState,
) -> Result<Opened, HttpError> {
    let id = msg.request_id().cloned().expect("requests carry ids");
    let cache = wait_until_ready(state)
        .await
        .map_err(|e| e.with_id(Some(&id)))?;
    let (asked, caps) = requested(&msg);
    let version = protocol::negotiate(asked.as_deref());
    let body = Bytes::from(cache.response(&id, version));
    // Stateless Streamable HTTP keeps no session; a connection (SSE, WebSocket) always is one.
    if state.config.stateless && transport == Transport::StreamableHttp {
        return Ok(Opened::NoSession(body));
    }
    Ok(Opened::Session(
        NewSession {
            key,
            version,
            caps,
            router,
            child: None,
            transport,
            initialized: true,
        },
        body,
    ))
}

/// Per-session mode: spawn the session's child, pass `initialize` through, keep the session if
/// the child accepts it.
async fn open_own_child(
    msg: Message,
    key: SessionKey,
    transport: Transport,
    child_env: Vec<(String, String)>,
    state: &AppState,
) -> Result<Opened, HttpError> {
    let id = msg.request_id().cloned().expect("requests carry ids");
    if state.shutdown.is_cancelled() {
        return Err(HttpError::unavailable(
            jsonrpc::UPSTREAM_UNAVAILABLE,
            "Service Unavailable: mcp-bridge is shutting down",
            1,
        )
        .with_id(Some(&id)));
    }
    let max = state.config.max_children;
    if state.children.fetch_add(1, Ordering::SeqCst) >= max {
        state.children.fetch_sub(1, Ordering::SeqCst);
        return Err(too_many(&format!(
            "the bridge already runs its maximum of {max} children (--max-children)"
        ))
        .with_id(Some(&id)));
    }
    let mut spec: ChildSpec = state.config.child.clone();
    spec.env.extend(child_env);
    let spawned = match child::spawn(&spec, &state.tracker, &state.metrics) {
        Ok(spawned) => spawned,
        Err(e) => {
            state.children.fetch_sub(1, Ordering::SeqCst);
            let text = format!(
                "Service Unavailable: cannot start the session's child {:?}: {e}",
                spec.program
            );
            return Err(
                HttpError::unavailable(jsonrpc::UPSTREAM_UNAVAILABLE, text, 5).with_id(Some(&id)),
            );
        }
    };
    let control = spawned.control.clone();
    count_down_on_exit(state, control.clone());
    // Until the session exists, a dropped request (the client went away) must not leak the child.
    let mut guard = StopOnDrop {
        child: Some(control.clone()),
        tracker: state.tracker.clone(),
    };
    let options = RouterOptions {
        scope: Some(key),
        ..state.router_options.clone()
    };
    let router = router::start(
        spawned,
        state.sessions.clone(),
        state.metrics.clone(),
        options,
        &state.tracker,
    );
    let (_, caps) = requested(&msg);
    let init = msg.to_json_with_id(msg.request_id());
    let body = match router.call(key, msg, state.config.init_timeout, None).await {
        Ok(body) => body,
        Err(e) => {
            control.stop(CHILD_STOP_STEP).await;
            let text = format!("Service Unavailable: the session's child did not initialize: {e}");
            return Err(HttpError::unavailable(e.code(), text, 1).with_id(Some(&id)));
        }
    };
    let response: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let Some(version) = response["result"]["protocolVersion"].as_str() else {
        // The child refused (or garbled) initialize: pass its answer on, keep no session.
        state
            .tracker
            .spawn(async move { control.stop(CHILD_STOP_STEP).await });
        return Ok(Opened::NoSession(body));
    };
    let version = protocol::supported(version).unwrap_or(protocol::LATEST_VERSION);
    tracing::info!(child.pid = control.pid(), "session child started");
    guard.child = None;
    let slot = ChildSlot::new(control);
    state.tracker.spawn(crate::supervisor::session_child(
        crate::supervisor::SessionChild {
            key,
            spec,
            slot: slot.clone(),
            router: router.clone(),
            init,
            sessions: state.sessions.clone(),
            tracker: state.tracker.clone(),
            shutdown: state.shutdown.clone(),
            settings: state.config.restart,
            init_timeout: state.config.init_timeout,
            children: state.children.clone(),
            metrics: state.metrics.clone(),
        },
    ));
    Ok(Opened::Session(
        NewSession {
            key,
            version,
            caps,
            router,
            child: Some(slot),
            transport,
            initialized: true,
        },
        body,
    ))
}

/// Per-session mode, adopting a session another replica opened ([`crate::session::seal`]):
/// starts its own child and initializes it with the sealed protocol version and capabilities and
/// the bridge's client info. Returns the session to register under `key`. Errors as for
/// [`open`], and 503 when the child refuses the `initialize`.
pub async fn reopen_own_child(
    sealed: crate::session::seal::Sealed,
    key: SessionKey,
    child_env: Vec<(String, String)>,
    state: &AppState,
) -> Result<NewSession, HttpError> {
    let c = sealed.caps;
    let mut caps = serde_json::Map::new();
    if c.sampling {
        caps.insert("sampling".into(), serde_json::json!({}));
    }
    if c.elicitation_form || c.elicitation_url {
        let mut modes = serde_json::Map::new();
        if c.elicitation_form {
            modes.insert("form".into(), serde_json::json!({}));
        }
        if c.elicitation_url {
            modes.insert("url".into(), serde_json::json!({}));
        }
        caps.insert("elicitation".into(), Value::Object(modes));
    }
    if c.roots {
        caps.insert("roots".into(), serde_json::json!({}));
    }
    let init = serde_json::json!({
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {
            "protocolVersion": sealed.version,
            "capabilities": caps,
            "clientInfo": {"name": "mcp-bridge", "version": env!("CARGO_PKG_VERSION")},
        },
    });
    let msg = Message::parse(init.to_string().as_bytes()).expect("a well-formed initialize");
    // Errors name no request id: the client's request is not the bridge's initialize.
    let opened = open_own_child(msg, key, Transport::StreamableHttp, child_env, state)
        .await
        .map_err(|e| e.with_id(None))?;
    match opened {
        // The session keeps the version the client negotiated with the first replica.
        Opened::Session(new, _) => Ok(NewSession {
            version: sealed.version,
            ..new
        }),
        Opened::NoSession(body) => Err(HttpError::unavailable(
            jsonrpc::UPSTREAM_UNAVAILABLE,
            format!(
                "Service Unavailable: the session's new child refused initialize: {}",
                String::from_utf8_lossy(&body)
            ),
            1,
        )),
    }
}

/// Stops a just-started session child when dropped while still armed.
struct StopOnDrop {
    child: Option<child::ChildControl>,
    tracker: tokio_util::task::TaskTracker,
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            self.tracker
                .spawn(async move { child.stop(CHILD_STOP_STEP).await });
        }
    }
}

/// The `--session-env` variables taken from `headers`. Values are never logged (they may be
/// credentials).
pub fn child_env(map: &[(http::HeaderName, String)], headers: &HeaderMap) -> Vec<(String, String)> {
    map.iter()
        .filter_map(|(header, var)| {
            Some((var.clone(), headers.get(header)?.to_str().ok()?.to_string()))
        })
        .collect()
}

/// Frees the child's slot under `--max-children` when it exits.
fn count_down_on_exit(state: &AppState, control: child::ChildControl) {
    let counter = state.children.clone();
    state.tracker.spawn(async move {
        control.exited().await;
        counter.fetch_sub(1, Ordering::SeqCst);
    });
}

/// 503 when another session would exceed `--max-sessions`.
pub fn check_room(state: &AppState) -> Result<(), HttpError> {
    match state.sessions.is_full() {
        true => {
            let full = crate::session::TooManySessions(state.config.max_sessions);
            Err(too_many(&full.to_string()))
        }
        false => Ok(()),
    }
}

/// 503 for a full session or child table.
pub fn too_many(what: &str) -> HttpError {
    HttpError::unavailable(
        jsonrpc::OVERLOADED,
        format!("Service Unavailable: {what}"),
        5,
    )
}

/// Adds the `Mcp-Session-Id` header of `session` to a response.
pub fn set_session_header(headers: &mut HeaderMap, session: &Session) {
    let value = HeaderValue::from_str(&session.id).expect("session ids are visible ASCII");
    headers.insert(SESSION_HEADER, value);
}

/// Registers the session an `initialize` of `principal` opened over Streamable HTTP (its id
/// sealed when a shared secret is set). Errors: 503 at the limit (its per-session child, if any,
/// is stopped).
pub fn register(
    state: &AppState,
    new: NewSession,
    principal: crate::auth::Principal,
    id: Option<&jsonrpc::RequestId>,
) -> Result<Arc<Session>, HttpError> {
    let child = new.child.clone();
    state.sessions.insert_bound(new, principal).map_err(|e| {
        if let Some(child) = child {
            state
                .tracker
                .spawn(async move { child.stop(CHILD_STOP_STEP).await });
        }
        too_many(&e.to_string()).with_id(id)
    })
}

/// Waits (up to the init timeout) while the shared child is starting; returns the initialize
/// cache once ready. Errors: 503 naming why the child is not ready.
async fn wait_until_ready(state: &AppState) -> Result<Arc<InitCache>, HttpError> {
    if state.shutdown.is_cancelled() {
        return Err(HttpError::unavailable(
            jsonrpc::UPSTREAM_UNAVAILABLE,
            "Service Unavailable: mcp-bridge is shutting down",
            1,
        ));
    }
    let mut rx = state.upstream.clone();
    let waited = tokio::time::timeout(
        state.config.init_timeout,
        rx.wait_for(|s| !matches!(s, UpstreamState::Starting | UpstreamState::Restarting(_))),
    )
    .await;
    let upstream = match waited {
        Ok(Ok(s)) => s.clone(),
        _ => UpstreamState::Starting,
    };
    match upstream {
        UpstreamState::Ready(cache) => Ok(cache),
        other => Err(HttpError::unavailable(
            jsonrpc::UPSTREAM_UNAVAILABLE,
            format!(
                "Service Unavailable: the upstream MCP server is not ready: {}",
                other.describe()
            ),
            1,
        )),
    }
}
