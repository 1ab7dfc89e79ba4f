//! The 2024-11-05 HTTP+SSE transport (PROTOCOL.md section 2.1): `GET /sse` opens a session and
//! its stream, whose first event (`endpoint`) names the URI to POST messages to
//! (`/message?sessionId=...`, relative, behind `--base-path` or a trusted `X-Forwarded-Prefix`);
//! every server message, responses included, is a `message` event on the stream; POSTs are
//! answered 202. The session ends when the stream closes.

use super::connection::{self, CloseOnDrop};
use super::streamable_http::get::session_stream;
use super::streamable_http::initialize::child_env;
use super::{check_content_type, full, read_body, sse, Body};
use crate::app::AppState;
use crate::error::HttpError;
use crate::jsonrpc::{self, Message};
use crate::session::Transport;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use std::sync::Arc;

/// `GET` on the SSE path: opens a session and streams its messages.
/// Errors: 405 for other methods, 503 at the session limit or while shutting down.
pub fn open_stream(req: &Request<Incoming>, state: &Arc<AppState>) -> Response<Body> {
    if req.method() != Method::GET {
        return HttpError::method_not_allowed("GET").into_response();
    }
    let session = match connection::open(state, Transport::Sse) {
        Ok(session) => session,
        Err(e) => return e.into_response(),
    };
    session.bind_principal(crate::auth::Principal::of(req.extensions()));
    let endpoint = format!(
        "{}{}?sessionId={}",
        prefix(req.headers(), state),
        state.config.message_path,
        session.id
    );
    let (_, rx) = session.attach_stream();
    let guard: Box<dyn Send> = Box::new(CloseOnDrop::new(state.clone(), session.key));
    session_stream(
        rx,
        state.config.sse_keep_alive,
        state.closing.clone(),
        vec![sse::endpoint_event(&endpoint)],
        Some(guard),
        &state.metrics.sessions.sse_streams_open,
    )
}

/// The path prefix the client sees in front of the bridge's paths.
fn prefix<'a>(headers: &'a HeaderMap, state: &'a AppState) -> &'a str {
    let forwarded = headers
        .get("x-forwarded-prefix")
        .and_then(|v| v.to_str().ok());
    match forwarded {
        Some(p) if state.config.trust_forwarded_prefix && p.starts_with('/') => {
            p.trim_end_matches('/')
        }
        _ => &state.config.base_path,
    }
}

/// `POST` on the message path: one JSON-RPC message of session `sessionId`, answered 202; its
/// response arrives on the session's stream. Errors: 400 (no `sessionId`, malformed JSON), 404
/// (unknown session), 405, 413, 415.
pub async fn post_message(req: Request<Incoming>, state: &Arc<AppState>) -> Response<Body> {
    match handle_post(req, state).await {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    }
}

async fn handle_post(
    req: Request<Incoming>,
    state: &Arc<AppState>,
) -> Result<Response<Body>, HttpError> {
    if req.method() != Method::POST {
        return Err(HttpError::method_not_allowed("POST"));
    }
    check_content_type(req.headers())?;
    let id = session_param(req.uri().query().unwrap_or("")).ok_or_else(|| {
        HttpError::bad_request(jsonrpc::INVALID_REQUEST, "Bad Request: the sessionId query parameter is required (take the URI from the endpoint event)")
    })?;
    let principal = crate::auth::Principal::of(req.extensions());
    let session = state
        .sessions
        .get(&id)
        .filter(|s| s.transport == Transport::Sse && s.belongs_to(principal))
        .ok_or_else(HttpError::unknown_session)?;
    // `--session-env` values come from the headers of the POST that carries `initialize`.
    let env = child_env(&state.config.session_env, req.headers());
    let body = read_body(req, state.config.max_body_bytes).await?;
    state
        .metrics
        .router
        .message(crate::router::Direction::FromClient, body.len());
    let msg = Message::parse(&body).map_err(|e| HttpError::bad_request(e.code(), e.to_string()))?;
    connection::on_message(state, session.key, msg, env);
    let mut resp = Response::new(full("Accepted"));
    *resp.status_mut() = StatusCode::ACCEPTED;
    Ok(resp)
}

/// The value of the `sessionId` (or `session_id`) query parameter.
fn session_param(query: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == "sessionId" || k == "session_id").then(|| v.to_string())
    })
}
