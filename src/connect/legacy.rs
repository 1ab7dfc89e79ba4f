//! HTTP+SSE client side (MCP 2024-11-05, PROTOCOL.md section 2.1): GET the SSE URL, wait for
//! the `endpoint` event, POST every message there; server messages arrive as `message` events.
//!
//! The endpoint is resolved against the SSE URL and must have the same origin, as the
//! TypeScript SDK client requires, so credentials never go to a host the user did not name.

use super::channel::{Connection, Incoming, Outgoing, Pending, OUTBOX};
use super::http::{self, BodyKind, EventReader, Failure, Http};
use super::Context;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The receiving half: the SSE stream.
pub struct Receiver {
    reader: EventReader,
    /// Cancelled by the sender when a POST got 404: the remote no longer knows the session.
    lost: CancellationToken,
}

impl Receiver {
    /// The next `message` event's data, or `None` at the end of the stream. Errors: the
    /// stream broke, or a POST found the session gone (so the connection is made anew). Cancel
    /// safe.
    pub async fn next(&mut self) -> Result<Option<Vec<u8>>, Failure> {
        loop {
            // Biased: events already received are delivered before a lost session ends it.
            let event = tokio::select! {
                biased;
                event = self.reader.next() => event?,
                _ = self.lost.cancelled() => {
                    return Err(Failure::Protocol(
                        "a POST got 404: the remote no longer knows the session".into(),
                    ))
                }
            };
            let Some(event) = event else { return Ok(None) };
            if event.is_message() {
                return Ok(Some(event.data.into_bytes()));
            }
        }
    }
}

/// Opens the SSE stream and reads the `endpoint` event. Errors: the GET failed, the answer is
/// not an event stream, or its first event is not a same-origin `endpoint`.
pub(super) async fn open(cx: &Context, pending: Pending) -> Result<Connection, Failure> {
    let http = Http::new(&cx.config, cx.credentials.clone())
        .map_err(|e| Failure::Unreachable(e.to_string()))?;
    let url = cx.config.url.clone();
    let request = http
        .request(::http::Method::GET, url.clone())
        .header(::http::header::ACCEPT, "text/event-stream")
        .header(::http::header::CACHE_CONTROL, "no-cache");
    let response = Http::send(request).await?;
    if http::body_kind(&response)? != BodyKind::EventStream {
        return Err(Failure::Protocol(format!(
            "GET {url} did not open an event stream"
        )));
    }
    let mut reader = EventReader::new(response, http.max_message_bytes);
    let first = reader.next().await?.ok_or_else(|| {
        Failure::Protocol("the SSE stream ended before the endpoint event".into())
    })?;
    if first.event.as_deref() != Some("endpoint") {
        return Err(Failure::Protocol(format!(
            "the first SSE event is {:?}, not \"endpoint\"",
            first.event.as_deref().unwrap_or("message")
        )));
    }
    let endpoint = url.join(first.data.trim()).map_err(|e| {
        Failure::Protocol(format!("the endpoint {:?} is not a URL: {e}", first.data))
    })?;
    if endpoint.origin() != url.origin() {
        return Err(Failure::Protocol(format!(
            "the endpoint {endpoint} is on another origin than {url}; refusing to send messages there"
        )));
    }
    tracing::debug!(%endpoint, "HTTP+SSE endpoint");
    let (outbox, rx) = mpsc::channel(OUTBOX);
    let lost = CancellationToken::new();
    let sender = Sender {
        http,
        endpoint,
        pending,
        lost: lost.clone(),
    };
    cx.tracker.spawn(post_each(cx.clone(), sender, rx));
    Ok(Connection {
        outbox,
        incoming: Incoming::Sse(Box::new(Receiver { reader, lost })),
    })
}

/// The sending half of one connection.
struct Sender {
    http: Http,
    /// Where messages are POSTed (from the `endpoint` event).
    endpoint: reqwest::Url,
    pending: Pending,
    /// Cancelled when a POST got 404 (see [`Receiver::next`]).
    lost: CancellationToken,
}

/// POSTs the queued messages in order. A failed POST of a request answers it with an error. A
/// refused token is read again from `--bearer-token-file` and the message sent once more; a
/// 404 ends the connection, which is then made anew (and re-initialized).
async fn post_each(cx: Context, sender: Sender, mut rx: mpsc::Receiver<Outgoing>) {
    let post = |body: Vec<u8>| {
        sender
            .http
            .request(::http::Method::POST, sender.endpoint.clone())
            .header(::http::header::CONTENT_TYPE, "application/json")
            .timeout(cx.config.timeout)
            .body(body)
    };
    loop {
        let message = tokio::select! {
            m = rx.recv() => match m { Some(m) => m, None => return },
            _ = cx.stop.cancelled() => return,
        };
        let seen = cx.credentials.version();
        let send = async {
            match Http::send(post(message.raw.clone())).await {
                Err(f) if f.is_auth() && cx.credentials.renewed_since(seen).await => {
                    Http::send(post(message.raw)).await
                }
                other => other,
            }
        };
        let result = tokio::select! {
            r = send => r.map(drop),
            _ = cx.stop.cancelled() => return,
        };
        let gone = matches!(&result, Err(f) if f.status() == Some(::http::StatusCode::NOT_FOUND));
        if let Err(f) = &result {
            tracing::warn!(error = %f, "POST to the HTTP+SSE endpoint failed");
        }
        // The failure is reported before the connection ends, so it is the one the waiting
        // initialize sees.
        super::channel::settle(&cx, &sender.pending, message.id, message.ack, result).await;
        if gone {
            // The connection is made anew; what is still queued waits for its end.
            sender.lost.cancel();
            return;
        }
    }
}
