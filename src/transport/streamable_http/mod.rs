//! Streamable HTTP transport on the MCP path (PROTOCOL.md sections 2.2-2.6): POST carries client
//! messages, GET opens the session's stream of server messages, DELETE ends the session.
//!
//! Owns: the header rules shared by the three methods (`Mcp-Session-Id`, `MCP-Protocol-Version`)
//! and dispatch by method. Every failure leaves through [`HttpError`].

mod delete;
pub(crate) mod get;
pub(crate) mod initialize;
mod post;
mod stream;

use crate::app::AppState;
use crate::error::HttpError;
use crate::jsonrpc;
use crate::protocol;
use crate::session::{NewSession, Session, Transport};
use crate::transport::Body;
use http::{HeaderMap, Method, Request, Response};
use hyper::body::Incoming;
use std::sync::Arc;

/// Name of the session header (case-insensitive on the wire).
pub const SESSION_HEADER: &str = "mcp-session-id";
/// Name of the protocol version header.
pub const VERSION_HEADER: &str = "mcp-protocol-version";
/// Methods the MCP endpoint accepts, for `Allow`.
const ALLOW: &str = "GET, POST, DELETE";

/// Serves one request to the MCP path. Never fails: errors become responses.
pub async fn handle(req: Request<Incoming>, state: Arc<AppState>) -> Response<Body> {
    let result = match *req.method() {
        Method::POST => post::handle(req, &state).await,
        // Stateless: no sessions, so no session stream and nothing to delete.
        Method::GET | Method::DELETE if state.config.stateless => {
            Err(HttpError::method_not_allowed("POST"))
        }
        Method::GET => get::handle(&req, &state).await,
        Method::DELETE => delete::handle(&req, &state).await,
        _ => Err(HttpError::method_not_allowed(ALLOW)),
    };
    result.unwrap_or_else(HttpError::into_response)
}

/// Validates `MCP-Protocol-Version` when present: 400 when it names a version the bridge does
/// not support (PROTOCOL.md section 2.6). Absent is fine (the negotiated version applies).
fn check_version_header(headers: &HeaderMap) -> Result<(), HttpError> {
    let Some(value) = headers.get(VERSION_HEADER) else {
        return Ok(());
    };
    let text = value.to_str().unwrap_or("");
    if protocol::supported(text).is_some() {
        return Ok(());
    }
    Err(HttpError::bad_request(
        jsonrpc::INVALID_REQUEST,
        format!(
            "Bad Request: unsupported MCP-Protocol-Version {text:?}; supported: {}",
            protocol::SUPPORTED_VERSIONS.join(", ")
        ),
    ))
}

/// The session named by `Mcp-Session-Id` and bound to `principal`, adopted from its sealed id
/// when another replica opened it moments ago (`MCP_BRIDGE_SESSION_SECRET`,
/// [`crate::session::seal`]). Errors: 400 when the header is missing, 404 when unknown or bound
/// to another principal, 503 when adopting it would exceed `--max-sessions` or its per-session
/// child cannot be started.
async fn require_session(
    headers: &HeaderMap,
    principal: crate::auth::Principal,
    state: &AppState,
) -> Result<Arc<Session>, HttpError> {
    let Some(value) = headers.get(SESSION_HEADER) else {
        return Err(HttpError::missing_session());
    };
    let id = value.to_str().map_err(|_| HttpError::unknown_session())?;
    // A session used with another principal's token is as unknown as a wrong id.
    let session = match state.sessions.get(id) {
        Some(session) => session,
        None => adopt(id, principal, headers, state).await?,
    };
    match session.transport == Transport::StreamableHttp && session.belongs_to(principal) {
        true => {
            session.claim();
            Ok(session)
        }
        false => Err(HttpError::unknown_session()),
    }
}

/// Adopts the session `id` from its seal. Shared mode registers it with the shared child; in
/// per-session mode its own child is started and initialized with the sealed protocol version
/// and capabilities (and the bridge's client info; the client's own `initialize` went to the
/// replica that opened the session). Errors: 404 when it is not adoptable, 503 at
/// `--max-sessions` or when the child cannot be started.
async fn adopt(
    id: &str,
    principal: crate::auth::Principal,
    headers: &HeaderMap,
    state: &AppState,
) -> Result<Arc<Session>, HttpError> {
    let sealed = state
        .sessions
        .unseal(id, principal)
        .ok_or_else(HttpError::unknown_session)?;
    // One adoption per id at a time; those that waited find the session registered.
    let lock = state.sessions.adoption_lock(id);
    let _turn = lock.lock().await;
    if let Some(session) = state.sessions.get(id) {
        return Ok(session);
    }
    let adopted = adopt_now(id, sealed, principal, headers, state).await;
    state.sessions.adoption_done(id);
    adopted
}

async fn adopt_now(
    id: &str,
    sealed: crate::session::seal::Sealed,
    principal: crate::auth::Principal,
    headers: &HeaderMap,
    state: &AppState,
) -> Result<Arc<Session>, HttpError> {
    initialize::check_room(state)?;
    let key = state.sessions.next_key();
    let new = match &state.router {
        Some(router) => NewSession {
            key,
            version: sealed.version,
            caps: sealed.caps,
            router: router.clone(),
            child: None,
            transport: Transport::StreamableHttp,
            initialized: true,
        },
        None => {
            let env = initialize::child_env(&state.config.session_env, headers);
            initialize::reopen_own_child(sealed, key, env, state).await?
        }
    };
    let child = new.child.clone();
    let stop_child = || {
        if let Some(child) = child {
            state
                .tracker
                .spawn(async move { child.stop(crate::shutdown::CHILD_STOP_STEP).await });
        }
    };
    match state.sessions.register_adopted(id, new, principal) {
        Ok(Some((session, fresh))) => {
            if !fresh {
                stop_child();
            }
            Ok(session)
        }
        // It ended here while its child was starting: it stays ended.
        Ok(None) => {
            stop_child();
            Err(HttpError::unknown_session())
        }
        Err(full) => {
            stop_child();
            Err(initialize::too_many(&full.to_string()))
        }
    }
}
