//! DELETE on the MCP path: ends a session (PROTOCOL.md section 2.5). Its GET stream closes, its
//! in-flight requests are cancelled at the child, its own child (per-session mode) is stopped,
//! and later use of its id gets 404.

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
    let session = require_session(
        req.headers(),
        crate::auth::Principal::of(req.extensions()),
        state,
    )
    .await?;
    state.end_session(&session, "deleted by the client").await;
    Ok(Response::new(empty()))
}
