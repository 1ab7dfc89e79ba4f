//! The router's handling of what comes from the child (responses, requests, notifications,
//! garbage, exit) and of what it writes to the child's stdin.

use super::{RouteError, Router, UpstreamId};
use crate::child::ExitInfo;
use crate::jsonrpc::codec::Frame;
use crate::jsonrpc::{self, Kind, Message, RequestId};
use crate::session::SessionKey;
use crate::transport::sse;
use bytes::Bytes;
use serde_json::json;

impl Router {
    pub(super) fn handle_frame(&mut self, frame: Frame) {
        let line = match frame {
            Frame::Line(line) => line,
            Frame::TooLong(max) => {
                tracing::warn!(
                    child.pid = self.pid,
                    max_bytes = max,
                    "over-long line from child skipped"
                );
                self.metrics.skipped("too_long");
                return;
            }
        };
        if line.iter().all(u8::is_ascii_whitespace) {
            self.metrics.skipped("empty");
            return;
        }
        let msg = match Message::parse(&line) {
            Ok(msg) => msg,
            Err(e) => {
                let reason = if e.code() == jsonrpc::PARSE_ERROR {
                    "not_json"
                } else {
                    "not_jsonrpc"
                };
                tracing::warn!(child.pid = self.pid, error = %e, bytes = line.len(), "line from child is not a JSON-RPC message, skipped");
                self.metrics.skipped(reason);
                return;
            }
        };
        self.metrics.child_messages.inc();
        match msg.kind().expect("parse() validated it") {
            Kind::Response => self.handle_response(msg),
            Kind::Request => self.handle_child_request(msg),
            Kind::Notification => self.handle_child_notification(msg, &line),
        }
        self.metrics.requests_in_flight.set(self.map.len() as i64);
    }

    fn handle_response(&mut self, msg: Message) {
        let up = match msg.request_id() {
            Some(RequestId::Number(n)) if *n > 0 => UpstreamId(*n as u64),
            _ => {
                tracing::warn!(
                    child.pid = self.pid,
                    "response from child with an id the bridge never sent, dropped"
                );
                return;
            }
        };
        let Some(entry) = self.map.resolve(up) else {
            tracing::debug!(
                upstream.id = up.0,
                "late response (cancelled or abandoned request) dropped"
            );
            return;
        };
        let bytes = Bytes::from(msg.to_json_with_id(Some(&entry.client_id)));
        let _ = entry.payload.send(Ok(bytes));
    }

    /// Server-to-client requests: the bridge offers the child no client capabilities, so only
    /// `ping` is answered (by the bridge itself); anything else gets a JSON-RPC error at once.
    fn handle_child_request(&mut self, msg: Message) {
        let id = msg.request_id().expect("requests carry ids");
        let line = if msg.method() == "ping" {
            jsonrpc::result_response(
                id,
                &serde_json::value::RawValue::from_string("{}".into()).expect("valid"),
            )
        } else {
            let text = format!(
                "mcp-bridge does not forward server-to-client request {:?} in shared mode (the capability was not offered)",
                msg.method()
            );
            jsonrpc::error_response(Some(id), jsonrpc::METHOD_NOT_FOUND, &text)
        };
        if let Err(e) = self.write_line(line) {
            tracing::warn!(error = %e, "could not answer the child's request");
        }
    }

    fn handle_child_notification(&mut self, msg: Message, line: &Bytes) {
        tracing::trace!(rpc.method = msg.method(), "notification from child");
        let event = sse::message_event(line);
        let slow = self.sessions.broadcast(&event);
        self.metrics.slow_consumers.inc_by(slow as u64);
    }

    pub(super) fn handle_exit(&mut self, info: ExitInfo) {
        let how = format!("child process {info}");
        for (_, entry) in self.map.drain() {
            let _ = entry
                .payload
                .send(Err(RouteError::Unavailable(how.clone())));
        }
        self.exited = Some(how);
    }

    pub(super) fn forward_notification(&mut self, session: SessionKey, msg: Message) {
        if msg.method() != "notifications/cancelled" {
            if let Err(e) = self.write_line(msg.to_json_with_id::<RequestId>(None)) {
                tracing::debug!(error = %e, "client notification not forwarded");
            }
            return;
        }
        #[derive(serde::Deserialize)]
        struct Cancelled {
            #[serde(rename = "requestId")]
            request_id: RequestId,
        }
        let parsed = msg
            .params
            .as_deref()
            .and_then(|p| serde_json::from_str::<Cancelled>(p.get()).ok());
        if let Some(c) = parsed {
            self.cancel(session, &c.request_id, "cancelled by the client");
        }
    }

    /// Cancels a client's in-flight request: its waiter gets an error, the child a
    /// `notifications/cancelled` with the upstream id. Unknown ids are ignored (spec: MAY ignore).
    pub(super) fn cancel(&mut self, session: SessionKey, id: &RequestId, reason: &'static str) {
        let Some(up) = self.map.upstream_of(session, id) else {
            return;
        };
        if let Some(entry) = self.map.resolve(up) {
            let _ = entry.payload.send(Err(RouteError::Cancelled(reason)));
        }
        self.send_cancel(up, reason);
    }

    pub(super) fn send_cancel(&mut self, up: UpstreamId, reason: &str) {
        let note = json!({
            "jsonrpc": "2.0",
            "method": "notifications/cancelled",
            "params": { "requestId": up.0, "reason": reason },
        });
        let _ = self.write_line(serde_json::to_vec(&note).expect("json! serializes"));
    }

    /// Queues one message for the child's stdin as a single line. Raw `\r`/`\n` in JSON text can
    /// only be insignificant whitespace, so they become spaces (stdio framing forbids embedded
    /// newlines). Errors: [`RouteError::Overloaded`] when the queue is full,
    /// [`RouteError::Unavailable`] when the child's stdin is closed.
    pub(super) fn write_line(&mut self, mut line: Vec<u8>) -> Result<(), RouteError> {
        for b in line.iter_mut() {
            if *b == b'\n' || *b == b'\r' {
                *b = b' ';
            }
        }
        line.push(b'\n');
        self.stdin.try_send(Bytes::from(line)).map_err(|e| match e {
            tokio::sync::mpsc::error::TrySendError::Full(_) => RouteError::Overloaded,
            tokio::sync::mpsc::error::TrySendError::Closed(_) => RouteError::Unavailable(
                self.exited
                    .clone()
                    .unwrap_or_else(|| "its stdin is closed".into()),
            ),
        })
    }
}
