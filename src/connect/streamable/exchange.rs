//! One client message, one POST (PROTOCOL.md section 2.3): building it, retrying it once after
//! a session recovery, and reading its answer (a JSON body or an SSE stream, resumed with
//! `Last-Event-ID` when the stream drops after an event id, section 2.7).

use super::{Client, SessionState};
use crate::connect::http::{self, BodyKind, EventReader, Failure, Http};
use crate::connect::Inbound;
use crate::jsonrpc::{error_response, Message, RequestId};
use std::time::Duration;

/// Reconnection delay when the remote sent no `retry` field, as the SDK clients use.
pub const DEFAULT_RETRY: Duration = Duration::from_secs(1);
/// Resumptions in a row without a new event before a response stream is given up.
const MAX_RESUMES: u32 = 3;
/// `Last-Event-ID`.
const LAST_EVENT_ID: &str = "last-event-id";

impl Client {
    /// A GET of an event stream from the MCP endpoint with the session headers of `state`:
    /// the GET stream, or with `last_event_id` the resumption of a broken stream (section 2.7).
    pub(super) fn get_request(
        &self,
        state: &SessionState,
        last_event_id: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let request = self.inner.http.request(::http::Method::GET, self.url());
        let mut request = self
            .with_session(request, state)
            .header(::http::header::ACCEPT, "text/event-stream");
        if let Some(id) = last_event_id {
            request = request.header(LAST_EVENT_ID, id);
        }
        request
    }

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

    /// POSTs `body` in the current session. On a 401 or 403 after which `--bearer-token-file`
    /// holds a new token, POSTs once more with it. On a 404 for a session id, recovers and,
    /// when `resend`, POSTs once more in the new session; a message that belonged to the old
    /// session only (a response, a cancellation) is not resent and gives `Ok(None)`. Errors:
    /// the last failure.
    async fn post_recovering(
        &self,
        body: Vec<u8>,
        resend: bool,
    ) -> Result<Option<reqwest::Response>, Failure> {
        let state = self.session();
        let credentials = &self.inner.http.credentials;
        let seen = credentials.version();
        let mut sent = Http::send(self.post_request(body.clone(), &state)).await;
        // A rotated token: the refused message had no effect, so it is sent once more. (A
        // remote that ties sessions to the token then answers 404, and recovery follows.)
        if matches!(&sent, Err(f) if f.is_auth()) && credentials.renewed_since(seen).await {
            sent = Http::send(self.post_request(body.clone(), &state)).await;
        }
        match sent {
            Err(f) if f.status() == Some(::http::StatusCode::NOT_FOUND) && state.id.is_some() => {
                let recovered = self.recover(state.generation).await;
                recovered.map_err(|e| {
                    Failure::Protocol(format!(
                        "the remote lost the session and a new one could not be opened: {e}"
                    ))
                })?;
                match resend {
                    true => Http::send(self.post_request(body, &self.session()))
                        .await
                        .map(Some),
                    false => Ok(None),
                }
            }
            other => other.map(Some),
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
        let result = match self.post_recovering(body, true).await {
            Ok(Some(response)) => self.deliver(response, id, true).await,
            Ok(None) => Err(Failure::Protocol("the request was not resent".into())),
            Err(f) => Err(f),
        };
        let why = match result {
            Ok(Some(_)) => return,
            Ok(None) => {
                tracing::debug!(rpc.id = %id, "the POST got 202; expecting the answer on the GET stream");
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
        let resend = method == "notifications/initialized";
        let result = match tokio::time::timeout(timeout, self.post_recovering(body, resend)).await {
            Ok(result) => result,
            Err(_) => Err(Failure::Unreachable(format!(
                "no answer within {timeout:?}"
            ))),
        };
        match result {
            Ok(Some(_)) if resend => self.start_listening(),
            // Dropping the answer to a notification or response closes its (empty) body.
            Ok(Some(_)) => {}
            Ok(None) => {
                tracing::info!(
                    rpc.method = method,
                    "not resent: it belonged to the lost session"
                )
            }
            Err(f) => {
                tracing::warn!(rpc.method = method, error = %f, "the remote did not accept a message")
            }
        }
        self.abandon(message);
    }

    /// Stops waiting for the request a `notifications/cancelled` names.
    fn abandon(&self, cancel: &Message) {
        let id = crate::connect::cancelled_request(cancel);
        let token = id.and_then(|id| {
            self.inner
                .inflight
                .lock()
                .expect("inflight lock")
                .remove(&id)
        });
        if let Some(token) = token {
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
                answer.map(Some).ok_or_else(|| {
                    Failure::Protocol("the JSON answer holds no response to the request".into())
                })
            }
            BodyKind::EventStream => self
                .read_stream(EventReader::new(response, max), want, forward)
                .await
                .map(Some),
        }
    }

    /// Forwards one inbound message; returns its JSON when it is the answer to `want`. An
    /// error response with `"id": null` in a request's own answer (a server that could not read
    /// the id) is taken as the answer, under the request's id.
    async fn take(&self, data: Vec<u8>, want: &RequestId, forward: bool) -> Option<Vec<u8>> {
        let inbound = match Inbound::try_parse(data) {
            Ok(inbound) => inbound,
            Err((data, e)) => {
                let Some(text) = null_id_error(&data) else {
                    tracing::warn!(error = %e, "dropped a message from the remote that is not JSON-RPC");
                    return None;
                };
                let error = error_response(Some(want), crate::connect::REMOTE_ERROR, &text);
                Inbound::parse(error)?
            }
        };
        inbound.deliver(&self.inner.cx.out, want, forward).await
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
                    retry = event
                        .retry
                        .unwrap_or(retry)
                        .min(crate::connect::MAX_BACKOFF);
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
            let request = self.get_request(&state, Some(&event_id));
            let response = Http::send(request).await?;
            reader = EventReader::new(response, self.inner.http.max_message_bytes);
        }
    }
}

/// The message of a JSON-RPC error response whose `id` is null, worded for the local client.
fn null_id_error(data: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(data).ok()?;
    if !value.get("id")?.is_null() {
        return None;
    }
    let error = value.get("error")?;
    let message = error.get("message").and_then(|m| m.as_str()).unwrap_or("");
    Some(format!("the remote answered with an error: {message}"))
}
