//! POST on the MCP path: one JSON-RPC message (or, for 2025-03-26 sessions, a batch) per request
//! (PROTOCOL.md section 2.3). Requests are answered with `application/json`; notifications and
//! responses with 202 and no body.
//!
//! Lenient where clients are sloppy (a missing or partial `Accept` still gets JSON), strict where
//! the spec is: 415 for a non-JSON `Content-Type`, 413 over the body limit, 400 with -32700 or
//! -32600 for malformed bodies, 400/404 for missing/unknown sessions.

use super::{check_version_header, require_session, SESSION_HEADER};
use crate::app::{AppState, UpstreamState};
use crate::error::HttpError;
use crate::jsonrpc::{self, Kind, Message, RequestId};
use crate::protocol;
use crate::router::RouteError;
use crate::session::Session;
use crate::transport::{empty, full, Body};
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::value::RawValue;
use std::sync::Arc;

/// Serves one POST. Errors are described in the module doc.
pub async fn handle(req: Request<Incoming>, state: &AppState) -> Result<Response<Body>, HttpError> {
    check_content_type(req.headers())?;
    check_version_header(req.headers())?;
    let has_session = req.headers().contains_key(SESSION_HEADER);
    let session = if has_session {
        Some(require_session(req.headers(), state))
    } else {
        None
    };
    let body = read_body(req, state.config.max_body_bytes).await?;
    if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        let session = session.unwrap_or_else(|| Err(HttpError::missing_session()))?;
        return batch(&body, session, state).await;
    }
    let msg = Message::parse(&body).map_err(|e| HttpError::bad_request(e.code(), e.to_string()))?;
    if msg.kind() == Ok(Kind::Request) && msg.method() == "initialize" {
        return initialize(msg, state).await;
    }
    let session = session.unwrap_or_else(|| Err(HttpError::missing_session()))?;
    match single(msg, &session, state).await {
        Some(reply) => Ok(json_response(reply)),
        None => Ok(accepted()),
    }
}

/// 415 unless the `Content-Type` is JSON (`application/json` or `*/*+json`); absent is tolerated.
fn check_content_type(headers: &HeaderMap) -> Result<(), HttpError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let media = value
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if media == "application/json" || media.ends_with("+json") {
        return Ok(());
    }
    Err(HttpError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        jsonrpc::INVALID_REQUEST,
        format!("Unsupported Media Type: Content-Type must be application/json, got {media:?}"),
    ))
}

/// Reads the whole body, at most `max` bytes: 413 above it (checked on `Content-Length` first).
async fn read_body(req: Request<Incoming>, max: usize) -> Result<Bytes, HttpError> {
    let too_large = || {
        HttpError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            jsonrpc::INVALID_REQUEST,
            format!("Payload Too Large: the body limit is {max} bytes (--max-body-bytes)"),
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    match Limited::new(req.into_body(), max).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(e) => Err(HttpError::bad_request(
            jsonrpc::PARSE_ERROR,
            format!("Bad Request: reading the body failed: {e}"),
        )),
    }
}

/// Answers a session's `initialize` from the cache and opens the session.
async fn initialize(msg: Message, state: &AppState) -> Result<Response<Body>, HttpError> {
    let id = msg.request_id().cloned().expect("requests carry ids");
    let cache = state
        .wait_until_ready()
        .await
        .map_err(|e| e.with_id(Some(&id)))?;
    #[derive(serde::Deserialize)]
    struct Params {
        #[serde(rename = "protocolVersion")]
        protocol_version: Option<String>,
    }
    let requested = msg
        .params
        .as_deref()
        .and_then(|p| serde_json::from_str::<Params>(p.get()).ok());
    let version = protocol::negotiate(requested.and_then(|p| p.protocol_version).as_deref());
    let session = state.sessions.create(version).map_err(|e| {
        HttpError::unavailable(jsonrpc::OVERLOADED, format!("Service Unavailable: {e}"), 5)
            .with_id(Some(&id))
    })?;
    state
        .metrics
        .sessions_active
        .set(state.sessions.len() as i64);
    tracing::debug!(session.id = %session.id, protocol.version = version, "session initialized");
    let mut resp = json_response(Bytes::from(cache.response(&id, version)));
    let value = HeaderValue::from_str(&session.id).expect("session ids are visible ASCII");
    resp.headers_mut().insert(SESSION_HEADER, value);
    Ok(resp)
}

/// Handles one message of an established session. Returns the response body for a request,
/// `None` for a notification or a response (answered 202).
async fn single(msg: Message, session: &Session, state: &AppState) -> Option<Bytes> {
    match msg.kind().expect("validated by parse") {
        Kind::Request if msg.method() == "initialize" => Some(Bytes::from(jsonrpc::error_response(
            msg.request_id(),
            jsonrpc::INVALID_REQUEST,
            "this session is already initialized; send initialize without Mcp-Session-Id to start a new session",
        ))),
        Kind::Request => Some(forward(msg, session, state).await),
        Kind::Notification if msg.method() == "notifications/initialized" => None,
        Kind::Notification => {
            state.router.notify(session.key, msg).await;
            None
        }
        Kind::Response => {
            tracing::debug!(session.id = %session.id, "response from client to no pending server request, dropped");
            None
        }
    }
}

/// Forwards a request to the child and turns any routing failure into a JSON-RPC error response.
async fn forward(msg: Message, session: &Session, state: &AppState) -> Bytes {
    let id: RequestId = msg.request_id().cloned().expect("requests carry ids");
    match state
        .router
        .call(session.key, msg, state.config.request_timeout)
        .await
    {
        Ok(bytes) => bytes,
        Err(e) => Bytes::from(route_error_body(&id, &e)),
    }
}

fn route_error_body(id: &RequestId, e: &RouteError) -> Vec<u8> {
    jsonrpc::error_response(Some(id), e.code(), &e.to_string())
}

/// A JSON-RPC batch (2025-03-26 sessions only): requests and notifications, answered with an
/// array of the requests' responses in the order they were sent, or 202 when there are none.
async fn batch(
    body: &[u8],
    session: Arc<Session>,
    state: &AppState,
) -> Result<Response<Body>, HttpError> {
    if session.version != protocol::BATCH_VERSION {
        return Err(HttpError::bad_request(
            jsonrpc::INVALID_REQUEST,
            format!("JSON-RPC batches are only accepted from sessions that negotiated {} (this one: {})", protocol::BATCH_VERSION, session.version),
        ));
    }
    let items: Vec<Box<RawValue>> = serde_json::from_slice(body)
        .map_err(|e| HttpError::bad_request(jsonrpc::PARSE_ERROR, format!("parse error: {e}")))?;
    if items.is_empty() {
        return Err(HttpError::bad_request(
            jsonrpc::INVALID_REQUEST,
            "invalid request: empty batch",
        ));
    }
    let mut msgs = Vec::with_capacity(items.len());
    for raw in &items {
        let msg = Message::parse(raw.get().as_bytes())
            .map_err(|e| HttpError::bad_request(e.code(), e.to_string()))?;
        if msg.method() == "initialize" {
            return Err(HttpError::bad_request(
                jsonrpc::INVALID_REQUEST,
                "initialize must not be part of a JSON-RPC batch",
            ));
        }
        msgs.push(msg);
    }
    let replies =
        futures_util::future::join_all(msgs.into_iter().map(|m| single(m, &session, state))).await;
    let replies: Vec<Bytes> = replies.into_iter().flatten().collect();
    if replies.is_empty() {
        return Ok(accepted());
    }
    let mut out = Vec::with_capacity(replies.iter().map(|r| r.len() + 1).sum::<usize>() + 2);
    out.push(b'[');
    for (i, r) in replies.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(r);
    }
    out.push(b']');
    Ok(json_response(Bytes::from(out)))
}

fn json_response(body: Bytes) -> Response<Body> {
    let mut resp = Response::new(full(body));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn accepted() -> Response<Body> {
    let mut resp = Response::new(empty());
    *resp.status_mut() = StatusCode::ACCEPTED;
    resp
}

impl AppState {
    /// Waits (up to the init timeout) while the child is starting; returns the initialize cache
    /// once ready. Errors: 503 naming why the child is not ready.
    async fn wait_until_ready(&self) -> Result<Arc<crate::router::InitCache>, HttpError> {
        if self.shutdown.is_cancelled() {
            return Err(HttpError::unavailable(
                jsonrpc::UPSTREAM_UNAVAILABLE,
                "Service Unavailable: mcp-bridge is shutting down",
                1,
            ));
        }
        let mut rx = self.upstream.clone();
        let waited = tokio::time::timeout(
            self.config.init_timeout,
            rx.wait_for(|s| !matches!(s, UpstreamState::Starting)),
        )
        .await;
        let state = match waited {
            Ok(Ok(state)) => state.clone(),
            _ => UpstreamState::Starting,
        };
        match state {
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
}
