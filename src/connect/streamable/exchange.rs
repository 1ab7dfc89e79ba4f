//! One client message, one POST (PROTOCOL.md section 2.3): building it, retrying it once after
//! a session recovery, and reading its answer (a JSON body or an SSE stream, resumed with
//! `Last-Event-ID` when the stream drops after an event id, section 2.7).

use super::{Client, SessionState};
use crate::connect::http::{self, BodyKind, EventReader, Failure, Http};
use crate::connect::Inbound;
use crate::jsonrpc::{Message, RequestId};
use std::time::Duration;

/// Reconnection delay when the remote sent no `retry` field, as the SDK clients use.
pub const DEFAULT_RETRY: Duration = Duration::from_secs(1);
/// Resumptions in a row without a new event before a response stream is given up.
const MAX_RESUMES: u32 = 3;
/// `Last-Event-ID`.
const LAST_EVENT_ID: &str = "last-event-id";

impl Client {
    /// A POST of `body` to the MCP endpoint with the session headers of `state`.
    pub(super) fn post_request(
        &self,
        body: Vec<u8>,
        state: &SessionState,
    ) -> reqwest::RequestBuilder {
        let request = self
            .inner
            .http
            .request(::http::Method::POST, self.url())
            .header(::http::header::CONTENT_TYPE, "application/json")
            .header(
                ::http::header::ACCEPT,
                "application/json, text/event-stream",
            )
            .body(body);
        self.with_session(request, state)
    }

    /// POSTs `body` in the current session; on a 404 for a session id, recovers and POSTs once
    /// more in the new session. Errors: the last failure.
    async fn post_recovering(&self, body: Vec<u8>) -> Result<reqwest::Response, Failure> {
        let state = self.session();
        match Http::send(self.post_request(body.clone(), &state)).await {
            Err(f) if f.status() == Some(::http::StatusCode::NOT_FOUND) && state.id.is_some() => {
                self.recover(state.generation).await.map_err(|e| {
                    Failure::Protocol(format!(
                        "the remote lost the session and a new one could not be opened: {e}"
                    ))
                })?;
                Http::send(self.post_request(body, &self.session())).await
            }
            other => other,
        }
    }

    /// Runs a request in its own task until its response is on stdout, or it is cancelled
    /// (`notifications/cancelled` from the local client, or shutdown).
    pub(super) fn spawn_request(&self, id: RequestId, body: Vec<u8>) {
        let token = self.inner.cx.stop.child_token();
        let previous = self
            .inner
            .inflight
            .lock()
            .expect("inflight lock")
            .insert(id.clone(), token.clone());
        if previous.is_some() {
            tracing::warn!(rpc.id = %id, "the local client reused the id of a request still running");
        }
        let this = self.clone();
        self.inner.cx.tracker.spawn(async move {
            tokio::select! {
                _ = token.cancelled() => {}
                _ = this.request(&id, body) => {}
            }
            this.inner
                .inflight
                .lock()
                .expect("inflight lock")
                .remove(&id);
        });
    }

    /// POSTs one request and forwards its answer; a failure becomes a JSON-RPC error response.
    async fn request(&self, id: &RequestId, body: Vec<u8>) {
        let result = match self.post_recovering(body).await {
            Ok(response) => self.deliver(response, id, true).await,
            Err(f) => Err(f),
        };
        let why = match result {
            Ok(Some(_)) => return,
            Ok(None) => {
                tracing::debug!(rpc.id = %id, "the POST was accepted without an answer; expecting it on the GET stream");
                return;
            }
            Err(f) => f,
        };
        if why.is_auth() {
            tracing::error!(error = %why, "the remote refused the credentials");
        } else {
            tracing::warn!(rpc.id = %id, error = %why, "request failed");
        }
        let hint = if why.is_auth() {
            "; check --bearer-token-file or --header"
        } else {
            ""
        };
        let text = format!("mcp-bridge connect: {why}{hint}");
        crate::connect::reply_error(
            &self.inner.cx,
            Some(id),
            crate::connect::REMOTE_ERROR,
            &text,
        )
        .await;
    }

    /// POSTs a notification or response and waits for the remote to accept it (bounded by
    /// `--timeout`), so that messages reach the remote in stdin order.
    pub(super) async fn post_in_order(&self, message: &Message, body: Vec<u8>) {
        let method = message.method();
        let timeout = self.inner.cx.config.timeout;
        let result = match tokio::time::timeout(timeout, self.post_recovering(body)).await {
            Ok(result) => result,
            Err(_) => Err(Failure::Unreachable(format!(
                "no answer within {timeout:?}"
            ))),
        };
        match result {
            Ok(response) => {
                if method == "notifications/initialized" {
                    self.start_listening();
                }
                // A response to a notification has nothing to read; drain it in the background.
                drop(response);
            }
            Err(f) => {
                tracing::warn!(rpc.method = method, error = %f, "the remote did not accept a message")
            }
        }
        if method == "notifications/cancelled" {
            self.abandon(message);
        }
    }

    /// Stops waiting for the request a `notifications/cancelled` names.
    fn abandon(&self, cancel: &Message) {
        let id = cancel
            .params
            .as_ref()
            .and_then(|p| serde_json::from_str::<serde_json::Value>(p.get()).ok())
            .and_then(|p| serde_json::from_value::<RequestId>(p.get("requestId")?.clone()).ok());
        if let Some(token) = id.and_then(|id| {
            self.inner
                .inflight
                .lock()
                .expect("inflight lock")
                .remove(&id)
        }) {
            token.cancel();
        }
    }

    /// Reads the answer to request `want`: every message goes to stdout, except the answer
    /// itself when `forward` is false. Returns the answer's JSON, or `None` for a body-less
    /// 202. Errors: a bad body, or a stream that ended without the answer and could not be
    /// resumed.
    pub(super) async fn deliver(
        &self,
        response: reqwest::Response,
        want: &RequestId,
        forward: bool,
    ) -> Result<Option<Vec<u8>>, Failure> {
        let max = self.inner.http.max_message_bytes;
        match http::body_kind(&response)? {
            BodyKind::Empty => Ok(None),
            BodyKind::Json => {
                let mut answer = None;
                for data in http::json_messages(response, max).await? {
                    if let Some(found) = self.take(data, want, forward).await {
                        answer = Some(found);
                    }
                }
                Ok(answer)
            }
            BodyKind::EventStream => self
                .read_stream(EventReader::new(response, max), want, forward)
                .await
                .map(Some),
        }
    }

    /// Forwards one inbound message; returns its JSON when it is the answer to `want`.
    async fn take(&self, data: Vec<u8>, want: &RequestId, forward: bool) -> Option<Vec<u8>> {
        let inbound = Inbound::parse(data)?;
        let is_answer = inbound.response_to.as_ref() == Some(want);
        if forward || !is_answer {
            self.inner.cx.out.send(inbound.bytes.clone()).await;
        }
        is_answer.then_some(inbound.bytes)
    }

    /// Reads an SSE response stream until the answer to `want`, resuming it with
    /// `Last-Event-ID` (after the server's `retry` delay) when it ends early.
    async fn read_stream(
        &self,
        mut reader: EventReader,
        want: &RequestId,
        forward: bool,
    ) -> Result<Vec<u8>, Failure> {
        let mut last_id: Option<String> = None;
        let mut retry = DEFAULT_RETRY;
        let mut resumes = 0;
        loop {
            let ended = match reader.next().await {
                Ok(Some(event)) => {
                    last_id = event.id.clone().or(last_id);
                    retry = event.retry.unwrap_or(retry);
                    if event.is_message() {
                        resumes = 0;
                        if let Some(answer) =
                            self.take(event.data.into_bytes(), want, forward).await
                        {
                            return Ok(answer);
                        }
                    }
                    continue;
                }
                Ok(None) => Failure::Protocol("the response stream ended before the answer".into()),
                Err(f @ Failure::Unreachable(_)) => f,
                Err(f) => return Err(f),
            };
            let Some(event_id) = last_id.clone().filter(|_| resumes < MAX_RESUMES) else {
                return Err(ended);
            };
            resumes += 1;
            tracing::debug!(rpc.id = %want, last_event_id = %event_id, "resuming the response stream");
            tokio::time::sleep(retry).await;
            let state = self.session();
            let request = self
                .with_session(
                    self.inner.http.request(::http::Method::GET, self.url()),
                    &state,
                )
                .header(::http::header::ACCEPT, "text/event-stream")
                .header(LAST_EVENT_ID, event_id);
            let response = Http::send(request).await?;
            reader = EventReader::new(response, self.inner.http.max_message_bytes);
        }
    }
}
