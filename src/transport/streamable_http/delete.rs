//! DELETE on the MCP path: ends a session (PROTOCOL.md section 2.5). Its GET stream closes, its
//! in-flight requests are cancelled at the child, and later use of its id gets 404.

use super::{check_version_header, require_session};
use crate::app::AppState;
use crate::error::HttpError;
use crate::transport::{empty, Body};
use http::{Request, Response};
use hyper::body::Incoming;

/// Ends the session named by `Mcp-Session-Id`: 200 with an empty body, 400 without the header,
/// 404 for an unknown session.
pub async fn handle(
    req: &Request<Incoming>,
    state: &AppState,
) -> Result<Response<Body>, HttpError> {
    check_version_header(req.headers())?;
    let session = require_session(req.headers(), state)?;
    if state.sessions.remove(&session.id).is_none() {
        return Err(HttpError::unknown_session());
    }
    state
        .metrics
        .sessions_active
        .set(state.sessions.len() as i64);
    state.router.session_closed(session.key).await;
    tracing::debug!(session.id = %session.id, "session deleted");
    Ok(Response::new(empty()))
}
