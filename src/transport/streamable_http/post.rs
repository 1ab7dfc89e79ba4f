//! POST on the MCP path: one JSON-RPC message (or, for 2025-03-26 sessions, a batch) per request
//! (PROTOCOL.md section 2.3). A request is answered with `application/json` or, per
//! `--response-mode`, with an SSE stream carrying its related messages before the response;
//! notifications and responses get 202 and no body.
//!
//! Lenient where clients are sloppy (a missing or partial `Accept` still gets JSON), strict where
//! the spec is: 415 for a non-JSON `Content-Type`, 413 over the body limit, 400 with -32700 or
//! -32600 for malformed bodies, 400/404 for missing/unknown sessions.

use super::initialize::{self, set_session_header, Opened};
use super::stream::{answer_call, Answer, Caller};
use super::{check_version_header, require_session, SESSION_HEADER};
use crate::app::AppState;
use crate::cli::ResponseMode;
use crate::error::HttpError;
use crate::jsonrpc::{self, Kind, Message};
use crate::protocol;
use crate::router::RouterHandle;
use crate::session::{ClientCaps, InFlight, SessionKey, Transport};
use crate::transport::{check_content_type, empty, full, read_body, Body};
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::value::RawValue;
use std::sync::Arc;
use tracing::Instrument;

/// Methods whose handling commonly sends related messages (progress, sampling, logging).
const STREAMING_METHODS: [&str; 4] = [
    "tools/call",
    "prompts/get",
    "resources/read",
    "completion/complete",
];

/// How one message of a POST was answered.
enum Outcome {
    Json(Bytes),
    Stream(Response<Body>),
    Accepted,
    /// The session's in-flight limit is reached (429).
    TooMany(Option<jsonrpc::RequestId>),
}

/// Who a message comes from, as the router sees it.
struct Origin {
    /// The session, when there is one (not in stateless mode).
    session: Option<Arc<crate::session::Session>>,
    key: SessionKey,
    router: RouterHandle,
    caps: ClientCaps,
    /// Forward `notifications/initialized` (the session has its own child).
    own_child: bool,
    /// Release the origin's router state after each request (stateless mode).
    transient: bool,
}

/// Serves one POST. Errors are described in the module doc.
pub async fn handle(req: Request<Incoming>, state: &AppState) -> Result<Response<Body>, HttpError> {
    check_content_type(req.headers())?;
    check_version_header(req.headers())?;
    let headers = req.headers();
    let accept = accepts(headers);
    let principal = crate::auth::Principal::of(req.extensions());
    let session = match headers.contains_key(SESSION_HEADER) && !state.config.stateless {
        true => Some(require_session(headers, principal, state).await),
        false => None,
    };
    // Taken now because the body read consumes the request; empty unless --session-env is set.
    let child_env = initialize::child_env(&state.config.session_env, headers);
    let body = read_body(req, state.config.max_body_bytes).await?;
    if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        let session = session.unwrap_or_else(|| Err(HttpError::missing_session()))?;
        let span = session.span.clone();
        return batch(&body, session.version, origin_of(&session), state)
            .instrument(span)
            .await;
    }
    state
        .metrics
        .router
        .message(crate::router::Direction::FromClient, body.len());
    let msg = match Message::parse(&body) {
        Ok(msg) => msg,
        // An unknown session is reported before what is wrong with the body (404, not 400).
        Err(_) if matches!(session, Some(Err(_))) => {
            return Err(session.expect("matched").expect_err("matched"))
        }
        Err(e) => return Err(HttpError::bad_request(e.code(), e.to_string())),
    };
    if msg.kind() == Ok(Kind::Request) && msg.method() == "initialize" {
        return initialize_http(msg, child_env, principal, state).await;
    }
    let origin = match (session, &state.router) {
        (Some(session), _) => origin_of(&session?),
        (None, Some(router)) if state.config.stateless => Origin {
            session: None,
            key: state.sessions.next_key(),
            router: router.clone(),
            caps: ClientCaps::default(),
            own_child: false,
            transient: true,
        },
        (None, _) => return Err(HttpError::missing_session()),
    };
    let span = origin
        .session
        .as_ref()
        .map_or_else(tracing::Span::none, |s| s.span.clone());
    Ok(
        match single(msg, &origin, state, accept).instrument(span).await {
            Outcome::Json(body) => json_response(body),
            Outcome::Stream(resp) => resp,
            Outcome::Accepted => accepted(),
            Outcome::TooMany(id) => {
                return Err(too_many_in_flight(state.config.max_in_flight).with_id(id.as_ref()))
            }
        },
    )
}

/// `initialize` over Streamable HTTP: a new session with a new key (none when stateless).
async fn initialize_http(
    msg: Message,
    child_env: Vec<(String, String)>,
    principal: crate::auth::Principal,
    state: &AppState,
) -> Result<Response<Body>, HttpError> {
    initialize::check_room(state).map_err(|e| e.with_id(msg.request_id()))?;
    let id = msg.request_id().cloned();
    let key = state.sessions.next_key();
    match initialize::open(msg, key, Transport::StreamableHttp, child_env, state).await? {
        Opened::NoSession(body) => Ok(json_response(body)),
        Opened::Session(new, body) => {
            let session = initialize::register(state, new, principal, id.as_ref())?;
            tracing::debug!(session.id = %session.id, protocol.version = session.version, "session initialized");
            let mut resp = json_response(body);
            set_session_header(resp.headers_mut(), &session);
            Ok(resp)
        }
    }
}

/// 429 for a session that already has `max` requests in flight.
fn too_many_in_flight(max: usize) -> HttpError {
    HttpError {
        retry_after: Some(1),
        ..HttpError::new(
            StatusCode::TOO_MANY_REQUESTS,
            jsonrpc::OVERLOADED,
            format!("Too Many Requests: this session already has {max} requests in flight (--max-in-flight)"),
        )
    }
}

fn origin_of(session: &Arc<crate::session::Session>) -> Origin {
    Origin {
        session: Some(session.clone()),
        key: session.key,
        router: session.router.clone(),
        caps: session.caps,
        own_child: session.child.is_some(),
        transient: false,
    }
}

/// What a POST's `Accept` header allows for the answer.
#[derive(Clone, Copy)]
struct Accepts {
    /// `text/event-stream` is named explicitly (only then may a POST get SSE).
    sse: bool,
    /// JSON is acceptable: no `Accept`, or one naming `application/json`, `application/*` or
    /// `*/*`.
    json: bool,
}

fn accepts(headers: &HeaderMap) -> Accepts {
    let mut media = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.split(';').next().unwrap_or("").trim())
        .peekable();
    if media.peek().is_none() {
        return Accepts {
            sse: false,
            json: true,
        };
    }
    let (mut sse, mut json) = (false, false);
    for m in media {
        sse |= m.eq_ignore_ascii_case("text/event-stream");
        json |= m.eq_ignore_ascii_case("application/json")
            || m.eq_ignore_ascii_case("application/*")
            || m == "*/*";
    }
    Accepts { sse, json }
}

/// Handles one message of an established (or stateless) origin.
async fn single(msg: Message, origin: &Origin, state: &AppState, accept: Accepts) -> Outcome {
    match msg.kind().expect("validated by parse") {
        Kind::Request if msg.method() == "initialize" => Outcome::Json(Bytes::from(jsonrpc::error_response(
            msg.request_id(),
            jsonrpc::INVALID_REQUEST,
            "this session is already initialized; send initialize without Mcp-Session-Id to start a new session",
        ))),
        Kind::Request => {
            let slot = match origin.session.as_ref().map(|s| s.admit(state.config.max_in_flight)) {
                Some(None) => return Outcome::TooMany(msg.request_id().cloned()),
                Some(slot) => slot,
                None => None,
            };
            if let Err(e) = state.upstream_ready(origin.own_child).await {
                return Outcome::Json(Bytes::from(jsonrpc::error_response(msg.request_id(), e.code(), &e.to_string())));
            }
            if wants_stream(state.config.response_mode, accept.sse, &msg, origin.caps) {
                let json_ok = state.config.response_mode == ResponseMode::Auto && accept.json;
                return match stream_call(msg, origin, state, slot, json_ok).await {
                    Answer::Json(body) => Outcome::Json(body),
                    Answer::Stream(resp) => Outcome::Stream(resp),
                };
            }
            let body = call(msg, origin, state, None).await;
            drop(slot);
            Outcome::Json(body)
        }
        Kind::Notification if msg.method() == "notifications/initialized" && !origin.own_child => Outcome::Accepted,
        Kind::Notification => {
            origin.router.notify(origin.key, msg).await;
            Outcome::Accepted
        }
        Kind::Response => {
            origin.router.client_response(origin.key, msg).await;
            Outcome::Accepted
        }
    }
}

/// Whether a request is answered with an SSE stream (`--response-mode`, DESIGN.md section 3).
fn wants_stream(mode: ResponseMode, accepts_sse: bool, msg: &Message, caps: ClientCaps) -> bool {
    match mode {
        ResponseMode::Json => false,
        ResponseMode::Sse => accepts_sse,
        ResponseMode::Auto => {
            let progress = msg
                .params
                .as_deref()
                .is_some_and(|p| p.get().contains("progressToken"));
            let may_ask_client = caps.sampling || caps.elicitation_form || caps.elicitation_url;
            accepts_sse && (progress || may_ask_client || STREAMING_METHODS.contains(&msg.method()))
        }
    }
}

/// Forwards a request and returns its JSON response (or a JSON-RPC error for routing failures).
async fn call(
    msg: Message,
    origin: &Origin,
    state: &AppState,
    stream: Option<Arc<crate::session::replay::EventLog>>,
) -> Bytes {
    let id = msg.request_id().cloned().expect("requests carry ids");
    let reply = origin
        .router
        .call(origin.key, msg, state.config.request_timeout, stream)
        .await;
    if origin.transient {
        origin.router.session_closed(origin.key).await;
    }
    match reply {
        Ok(bytes) => bytes,
        Err(e) => Bytes::from(jsonrpc::error_response(Some(&id), e.code(), &e.to_string())),
    }
}

/// Forwards a request whose response (and related messages) may go on an SSE stream.
async fn stream_call(
    msg: Message,
    origin: &Origin,
    state: &AppState,
    slot: Option<InFlight>,
    json_ok: bool,
) -> Answer {
    let caller = Caller {
        router: origin.router.clone(),
        key: origin.key,
        session: origin.session.clone(),
        transient: origin.transient,
    };
    answer_call(msg, caller, state, slot, json_ok).await
}

/// A JSON-RPC batch (2025-03-26 sessions only): requests and notifications, answered with an
/// array of the requests' responses in the order they were sent, or 202 when there are none.
async fn batch(
    body: &[u8],
    version: &str,
    origin: Origin,
    state: &AppState,
) -> Result<Response<Body>, HttpError> {
    if version != protocol::BATCH_VERSION {
        return Err(HttpError::bad_request(
            jsonrpc::INVALID_REQUEST,
            format!("JSON-RPC batches are only accepted from sessions that negotiated {} (this one: {version})", protocol::BATCH_VERSION),
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
        state
            .metrics
            .router
            .message(crate::router::Direction::FromClient, raw.get().len());
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
    let outcomes = futures_util::future::join_all(msgs.into_iter().map(|m| {
        single(
            m,
            &origin,
            state,
            Accepts {
                sse: false,
                json: true,
            },
        )
    }))
    .await;
    let replies: Vec<Bytes> = outcomes
        .into_iter()
        .filter_map(|o| match o {
            Outcome::Json(b) => Some(b),
            Outcome::TooMany(id) => {
                let e = too_many_in_flight(state.config.max_in_flight);
                Some(Bytes::from(jsonrpc::error_response(
                    id.as_ref(),
                    e.code,
                    &e.message,
                )))
            }
            _ => None,
        })
        .collect();
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
