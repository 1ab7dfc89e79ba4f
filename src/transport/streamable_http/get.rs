//! GET on the MCP path: the session's stream of server messages (PROTOCOL.md section 2.4), with
//! keep-alive comments and the headers that stop intermediaries from buffering. A new GET of the
//! same session replaces the previous stream, which then ends.

use super::{check_version_header, require_session};
use crate::app::AppState;
use crate::error::HttpError;
use crate::jsonrpc;
use crate::transport::{sse, Body};
use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use prometheus_client::metrics::gauge::Gauge;
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{interval_at, Instant, Interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

/// Opens the SSE stream of the session named by `Mcp-Session-Id`.
/// Errors: 400 (no session header, bad version header), 404 (unknown session),
/// 406 (an `Accept` that excludes `text/event-stream`), 503 (shutting down).
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
    if !accepts_event_stream(req.headers()) {
        return Err(HttpError::new(
            StatusCode::NOT_ACCEPTABLE,
            jsonrpc::INVALID_REQUEST,
            "Not Acceptable: the GET stream is text/event-stream; include it in Accept",
        ));
    }
    if state.shutdown.is_cancelled() {
        return Err(HttpError::unavailable(
            jsonrpc::UPSTREAM_UNAVAILABLE,
            "mcp-bridge is shutting down",
            1,
        ));
    }
    let (keep_alive, shutdown) = (state.config.sse_keep_alive, state.closing.clone());
    if let Some(last) = req.headers().get("last-event-id") {
        let last = last.to_str().unwrap_or("");
        let (replay, rx) = session.streams.resume(last).map_err(|e| {
            HttpError::bad_request(jsonrpc::INVALID_REQUEST, format!("Bad Request: {e}"))
        })?;
        tracing::debug!(session.id = %session.id, last_event_id = last, replayed = replay.len(), "stream resumed");
        return Ok(session_stream(
            rx,
            keep_alive,
            shutdown,
            replay,
            None,
            &state.metrics.sessions.sse_streams_open,
        ));
    }
    let (log, rx) = session.attach_stream();
    tracing::debug!(session.id = %session.id, "GET stream opened");
    let first: Vec<Bytes> = session
        .wants_priming()
        .then(|| log.priming(RETRY_MS))
        .into_iter()
        .collect();
    Ok(session_stream(
        rx,
        keep_alive,
        shutdown,
        first,
        None,
        &state.metrics.sessions.sse_streams_open,
    ))
}

/// The reconnection delay announced to 2025-11-25 clients in priming events, in milliseconds.
pub const RETRY_MS: u64 = 1000;

fn accepts_event_stream(headers: &http::HeaderMap) -> bool {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    accept.split(',').any(|part| {
        let media = part.split(';').next().unwrap_or("").trim();
        media.eq_ignore_ascii_case("text/event-stream")
            || media == "*/*"
            || media.eq_ignore_ascii_case("text/*")
    })
}

/// An SSE response streaming `first` (replayed or priming events), then the events of `rx`, a
/// keep-alive comment every `keep_alive` of silence, ending when `rx` closes (session ended,
/// stream replaced, stream finished) or `shutdown` fires. `guard` (if any) is held until the
/// stream ends or the client goes away: its `Drop` is how the owner learns that. `open` (the
/// `mcp_bridge_sse_streams_open` gauge) counts the stream while it lives.
pub fn session_stream(
    rx: mpsc::Receiver<Bytes>,
    keep_alive: Duration,
    shutdown: CancellationToken,
    first: Vec<Bytes>,
    guard: Option<Box<dyn Send>>,
    open: &Gauge,
) -> Response<Body> {
    open.inc();
    let mut ticker = interval_at(Instant::now() + keep_alive, keep_alive);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let state = StreamState {
        rx,
        ticker,
        shutdown,
        first: first.into(),
        _guard: guard,
        _open: OpenStream(open.clone()),
    };
    let stream = futures_util::stream::unfold(state, next_event);
    sse::response(StreamBody::new(stream).boxed_unsync())
}

struct StreamState {
    rx: mpsc::Receiver<Bytes>,
    ticker: Interval,
    shutdown: CancellationToken,
    first: std::collections::VecDeque<Bytes>,
    _guard: Option<Box<dyn Send>>,
    _open: OpenStream,
}

/// Lowers `mcp_bridge_sse_streams_open` when the stream is dropped.
struct OpenStream(Gauge);

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.dec();
    }
}

async fn next_event(
    mut st: StreamState,
) -> Option<(Result<Frame<Bytes>, Infallible>, StreamState)> {
    if let Some(first) = st.first.pop_front() {
        return Some((Ok(Frame::data(first)), st));
    }
    let chunk = tokio::select! {
        biased;
        _ = st.shutdown.cancelled() => return None,
        msg = st.rx.recv() => msg?,
        _ = st.ticker.tick() => Bytes::from_static(sse::KEEP_ALIVE),
    };
    st.ticker.reset();
    Some((Ok(Frame::data(chunk)), st))
}
