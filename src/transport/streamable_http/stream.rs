//! A request answered with an SSE stream (PROTOCOL.md section 2.3): messages related to the
//! request (progress, server-to-client requests) come first, then the response, then the stream
//! ends. Keep-alive comments flow while the request runs. Dropping the stream (the client went
//! away) releases the request's routing entry without cancelling it at the child.

use crate::jsonrpc::{self, RequestId};
use crate::router::{Reply, RouteError};
use crate::transport::{sse, Body};
use bytes::Bytes;
use http::Response;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{interval_at, Instant, Interval, MissedTickBehavior};

/// The future that produces the request's response.
pub type Call = Pin<Box<dyn Future<Output = Reply> + Send>>;

struct State {
    events: mpsc::Receiver<Bytes>,
    events_open: bool,
    call: Option<Call>,
    /// The encoded response, once the call finished; sent after the queued events.
    last: Option<Bytes>,
    id: RequestId,
    ticker: Interval,
}

/// An SSE response for request `id`: events from `events` until `call` completes, then any
/// events still queued, then the response (or the routing error as a JSON-RPC error; nothing
/// when the client cancelled the request itself).
pub fn sse_for_call(
    id: RequestId,
    events: mpsc::Receiver<Bytes>,
    call: Call,
    keep_alive: Duration,
) -> Response<Body> {
    let mut ticker = interval_at(Instant::now() + keep_alive, keep_alive);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let state = State {
        events,
        events_open: true,
        call: Some(call),
        last: None,
        id,
        ticker,
    };
    let stream = futures_util::stream::unfold(state, next_chunk);
    sse::response(StreamBody::new(stream).boxed_unsync())
}

async fn next_chunk(mut st: State) -> Option<(Result<Frame<Bytes>, Infallible>, State)> {
    loop {
        let Some(call) = st.call.as_mut() else {
            // The call is over: flush what is queued, then the response, then end.
            if let Ok(event) = st.events.try_recv() {
                return Some((Ok(Frame::data(event)), st));
            }
            let last = st.last.take()?;
            return Some((Ok(Frame::data(last)), st));
        };
        tokio::select! {
            biased;
            event = st.events.recv(), if st.events_open => match event {
                Some(event) => {
                    st.ticker.reset();
                    return Some((Ok(Frame::data(event)), st));
                }
                None => st.events_open = false,
            },
            reply = call => {
                st.call = None;
                st.last = match reply {
                    Ok(bytes) => Some(sse::message_event(&bytes)),
                    // The client cancelled: it expects no response, the stream just ends.
                    Err(RouteError::CancelledByClient) => None,
                    Err(e) => Some(sse::message_event(&jsonrpc::error_response(Some(&st.id), e.code(), &e.to_string()))),
                };
            }
            _ = st.ticker.tick() => return Some((Ok(Frame::data(Bytes::from_static(sse::KEEP_ALIVE))), st)),
        }
    }
}
