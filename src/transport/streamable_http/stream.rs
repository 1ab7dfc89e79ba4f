//! A request answered with an SSE stream (PROTOCOL.md sections 2.3 and 2.7): messages related to
//! the request (progress, server-to-client requests) come first, then the response, then the
//! stream ends. The request runs in its own task, writing into the stream's event log, so a
//! client that loses the connection does not cancel it: it reconnects with `GET` and
//! `Last-Event-ID` and receives what it missed, the response included. Sessions on 2025-11-25 or
//! later get a priming event first.

use super::get::{session_stream, RETRY_MS};
use crate::app::AppState;
use crate::jsonrpc::{self, Message};
use crate::router::{RouteError, RouterHandle};
use crate::session::replay::EventLog;
use crate::session::{InFlight, Session, SessionKey};
use crate::transport::{sse, Body};
use http::Response;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

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

/// Starts `msg` and returns the SSE response that carries its related messages and response.
/// `slot` (the session's in-flight slot) is held until the response arrives.
pub fn sse_for_call(
    msg: Message,
    caller: Caller,
    state: &AppState,
    slot: Option<InFlight>,
) -> Response<Body> {
    let id = msg.request_id().cloned().expect("requests carry ids");
    let (log, rx) = match &caller.session {
        Some(session) => session.streams.open_post(),
        None => {
            let log = Arc::new(EventLog::new(0, 0, false));
            let (_, rx) = log
                .attach(None, state.config.session_outbox)
                .expect("a new log has lost nothing");
            (log, rx)
        }
    };
    let priming = caller
        .session
        .as_ref()
        .filter(|s| s.wants_priming())
        .map(|_| log.priming(RETRY_MS));
    let timeout = state.config.request_timeout;
    let writer = log.clone();
    state.tracker.spawn(async move {
        let reply = caller
            .router
            .call(caller.key, msg, timeout, Some(writer.clone()))
            .await;
        match reply {
            Ok(bytes) => {
                writer.push(&sse::message_event(&bytes));
            }
            // The client cancelled: it expects no response, the stream just ends.
            Err(RouteError::CancelledByClient) => {}
            Err(e) => {
                writer.push(&sse::message_event(&jsonrpc::error_response(
                    Some(&id),
                    e.code(),
                    &e.to_string(),
                )));
            }
        }
        writer.finish();
        if caller.transient {
            caller.router.session_closed(caller.key).await;
        }
        drop(slot);
    });
    // A request stream is not cut at shutdown: accepted requests finish within the grace period.
    session_stream(
        rx,
        state.config.sse_keep_alive,
        CancellationToken::new(),
        priming.into_iter().collect(),
        None,
    )
}
