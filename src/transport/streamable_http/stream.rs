//! A request that may be answered with an SSE stream (PROTOCOL.md sections 2.3 and 2.7): messages
//! related to the request (progress, server-to-client requests) come first, then the response,
//! then the stream ends.
//!
//! The answer is held back for up to [`HOLD`] while the request runs:
//! - if the response arrives first, it goes out in one write: as `application/json` when the
//!   caller allows JSON (`--response-mode auto` and an `Accept` that takes JSON) and no related
//!   message came with it, otherwise as a complete SSE stream;
//! - as soon as a related message arrives, or the hold ends, the SSE stream starts (with a
//!   priming event for sessions on 2025-11-25 or later) and the request continues in its own
//!   task writing into the stream's event log, so a client that loses the connection does not
//!   cancel it: it reconnects with `GET` and `Last-Event-ID` and receives what it missed, the
//!   response included.
//!
//! A fast `tools/call` therefore costs one response write, not the three of an SSE stream
//! (headers, event, terminating chunk); a slow one keeps the resumability of an SSE stream.

use super::get::{session_stream, RETRY_MS};
use crate::app::AppState;
use crate::jsonrpc::{self, Message, RequestId};
use crate::router::{Reply, RouteError, RouterHandle};
use crate::session::replay::EventLog;
use crate::session::{InFlight, Session, SessionKey};
use crate::transport::{sse, Body};
use bytes::Bytes;
use http::Response;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long a request's answer is held back before its SSE stream starts, waiting for the
/// response or a first related message.
pub const HOLD: Duration = Duration::from_millis(50);

/// Who sends the request: the router and key to use, the session (none when stateless), and
/// whether the origin's router state is released afterwards (stateless).
pub struct Caller {
    /// The router serving the origin.
    pub router: RouterHandle,
    /// The origin's key.
    pub key: SessionKey,
    /// The session, when there is one.
    pub session: Option<Arc<Session>>,
    /// Release the origin's router state after the request (stateless mode).
    pub transient: bool,
}

/// How a streamable request was answered.
pub enum Answer {
    /// The response arrived within the hold and JSON was allowed: the JSON-RPC response.
    Json(Bytes),
    /// An SSE stream (complete, or still running in its own task).
    Stream(Response<Body>),
}

/// Runs `msg` and answers it as described in the module doc. `json_ok` allows a plain JSON
/// answer when the response comes within [`HOLD`]; `slot` (the session's in-flight slot) is held
/// until the response arrives.
pub async fn answer_call(
    msg: Message,
    caller: Caller,
    state: &AppState,
    slot: Option<InFlight>,
    json_ok: bool,
) -> Answer {
    let id = msg.request_id().cloned().expect("requests carry ids");
    let (log, mut rx) = match &caller.session {
        Some(session) => session.streams.open_post(),
        None => {
            let log = Arc::new(EventLog::new(0, 0, false));
            let (_, rx) = log
                .attach(None, state.config.session_outbox)
                .expect("a new log has lost nothing");
            (log, rx)
        }
    };
    let (router, key, timeout) = (
        caller.router.clone(),
        caller.key,
        state.config.request_timeout,
    );
    let writer = log.clone();
    let mut call = Box::pin(async move { router.call(key, msg, timeout, Some(writer)).await });
    let first = tokio::select! {
        biased;
        reply = &mut call => {
            let body = reply_body(reply, &id);
            finish(&caller, slot).await;
            // Related messages the router queued before the response (both arrived at once)
            // still need a stream.
            let related = rx.try_recv().ok();
            match body {
                Some(body) if json_ok && related.is_none() => {
                    // The receiver goes first: closing the log then wakes no one.
                    drop(rx);
                    log.finish();
                    return Answer::Json(body);
                }
                Some(body) => {
                    log.push(&sse::message_event(&body));
                }
                None => {}
            }
            log.finish();
            return Answer::Stream(start_stream(&caller, &log, rx, related, state));
        }
        event = rx.recv() => event,
        _ = tokio::time::sleep(HOLD) => None,
    };
    let response = start_stream(&caller, &log, rx, first, state);
    state.tracker.spawn(async move {
        if let Some(body) = reply_body(call.await, &id) {
            log.push(&sse::message_event(&body));
        }
        log.finish();
        finish(&caller, slot).await;
    });
    Answer::Stream(response)
}

/// The response to send for `reply`: the child's response, or a JSON-RPC error for a routing
/// failure; `None` when the client cancelled the request (it expects no response).
fn reply_body(reply: Reply, id: &RequestId) -> Option<Bytes> {
    match reply {
        Ok(bytes) => Some(bytes),
        Err(RouteError::CancelledByClient) => None,
        Err(e) => Some(Bytes::from(jsonrpc::error_response(
            Some(id),
            e.code(),
            &e.to_string(),
        ))),
    }
}

/// After the response: releases a stateless origin's router state and the in-flight slot.
async fn finish(caller: &Caller, slot: Option<InFlight>) {
    if caller.transient {
        caller.router.session_closed(caller.key).await;
    }
    drop(slot);
}

/// The SSE response of `log`: a priming event for 2025-11-25 sessions, `first` (an event already
/// taken from `rx`), then the rest of `rx`. The log is kept for resumption from here on.
fn start_stream(
    caller: &Caller,
    log: &Arc<EventLog>,
    rx: tokio::sync::mpsc::Receiver<Bytes>,
    first: Option<Bytes>,
    state: &AppState,
) -> Response<Body> {
    let mut events = Vec::with_capacity(2);
    if let Some(session) = &caller.session {
        session.streams.keep_post(log.clone());
        if session.wants_priming() {
            events.push(log.priming(RETRY_MS));
        }
    }
    events.extend(first);
    // A request stream is not cut at shutdown: accepted requests finish within the grace period.
    session_stream(
        rx,
        state.config.sse_keep_alive,
        CancellationToken::new(),
        events,
        None,
        &state.metrics.sessions.sse_streams_open,
    )
}
