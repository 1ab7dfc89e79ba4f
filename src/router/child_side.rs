//! The router's handling of what comes from the child: responses, notifications (each routed to
//! the sessions it concerns), requests (see `server_requests`), garbage lines and exit.

use super::requests::RELATED_TASK;
use super::{RouteError, Router, UpstreamId};
use crate::child::ExitInfo;
use crate::jsonrpc::codec::Frame;
use crate::jsonrpc::{self, Kind, Message, RequestId};
use crate::session::{Delivery, LogLevel, SessionKey};
use crate::transport::sse;
use bytes::Bytes;
use serde_json::Value;

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
                self.metrics.child.skipped("too_long");
                return;
            }
        };
        if line.iter().all(u8::is_ascii_whitespace) {
            self.metrics.child.skipped("empty");
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
                self.metrics.child.skipped(reason);
                return;
            }
        };
        self.metrics
            .router
            .message(super::Direction::FromChild, line.len() + 1);
        tracing::trace!(target: "mcp_bridge::wire", { child.pid = self.pid, direction = "from_child", body = %String::from_utf8_lossy(&line) }, "message");
        match msg.kind().expect("parse() validated it") {
            Kind::Response => self.handle_response(msg),
            Kind::Request => self.handle_child_request(msg),
            Kind::Notification => self.handle_child_notification(msg, &line),
        }
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
            // A task created by a request no one waits for still belongs to its session.
            if let Some((session, _)) = self.orphans.remove(&up) {
                let task = msg
                    .result
                    .as_deref()
                    .and_then(|r| serde_json::from_str::<Value>(r.get()).ok());
                if let Some(id) = task.as_ref().and_then(|t| t["task"]["taskId"].as_str()) {
                    self.tasks.insert(id, session);
                }
            }
            tracing::debug!(
                upstream.id = up.0,
                "late response (cancelled or abandoned request) dropped"
            );
            return;
        };
        self.finish(entry, msg);
    }

    fn handle_child_notification(&mut self, msg: Message, line: &Bytes) {
        tracing::trace!(rpc.method = msg.method(), "notification from child");
        let params: Option<Value> = msg
            .params
            .as_deref()
            .and_then(|p| serde_json::from_str(p.get()).ok());
        let params = params.unwrap_or(Value::Null);
        match msg.method() {
            "notifications/progress" => self.route_progress(&msg, params),
            "notifications/cancelled" => self.route_child_cancel(&params),
            "notifications/resources/updated" => {
                let uri = params["uri"].as_str().unwrap_or_default();
                let event = sse::message_event(line);
                for key in self.subscriptions.subscribers(uri) {
                    self.deliver_to_session(key, event.clone());
                }
            }
            "notifications/elicitation/complete" => {
                let id = params["elicitationId"].as_str().unwrap_or_default();
                if let Some(key) = self.elicitations.remove(id) {
                    self.deliver_to_session(key, sse::message_event(line));
                }
            }
            "notifications/message" if related_task(&params).is_none() => {
                let level = params["level"]
                    .as_str()
                    .and_then(LogLevel::parse)
                    .unwrap_or(LogLevel::Emergency);
                let event = sse::message_event(line);
                self.deliver_to_stateless(&event);
                self.broadcast(event, |s| s.log_level().is_none_or(|l| level >= l));
            }
            _ => match related_task(&params).and_then(|t| self.tasks.owner(t)) {
                Some(owner) => {
                    self.deliver_to_session(owner, sse::message_event(line));
                }
                None if related_task(&params).is_some() => {
                    tracing::debug!(
                        rpc.method = msg.method(),
                        "task message for an unknown task dropped"
                    );
                }
                None => self.broadcast(sse::message_event(line), |_| true),
            },
        }
    }

    /// Progress for a request in flight: restore the client's token and send it where the
    /// request's other related messages go.
    fn route_progress(&mut self, msg: &Message, mut params: Value) {
        let Some(up) = params["progressToken"].as_u64().map(UpstreamId) else {
            tracing::debug!("progress with a token the bridge never issued, dropped");
            return;
        };
        let Some(original) = self.map.get(up).and_then(|e| e.payload.progress.clone()) else {
            tracing::debug!(
                upstream.id = up.0,
                "progress for a finished request, dropped"
            );
            return;
        };
        params["progressToken"] = original;
        let out = serde_json::json!({ "jsonrpc": "2.0", "method": msg.method(), "params": params });
        let event = sse::message_event(&serde_json::to_vec(&out).expect("serializes"));
        self.deliver_related(up, event);
    }

    /// Sends `event` on the POST stream of request `up`, or on its session's GET stream when
    /// the POST was answered with JSON (or its stream is gone).
    pub(super) fn deliver_related(&mut self, up: UpstreamId, event: Bytes) -> bool {
        let Some(entry) = self.map.get(up) else {
            return false;
        };
        let session = entry.session;
        if let Some(stream) = &entry.payload.stream {
            // Kept in the POST stream's log even when its reader went away: it may resume.
            if stream.push(&event) != super::Push::Dropped {
                return true;
            }
        }
        self.deliver_to_session(session, event)
    }

    /// The client sessions (not the bridge itself) with requests in flight, in key order.
    /// Includes the sessions of orphaned requests the child may still be working on.
    pub(super) fn busy_sessions(&self) -> Vec<SessionKey> {
        let mut busy = self.map.sessions_in_flight();
        let now = std::time::Instant::now();
        busy.extend(
            self.orphans
                .values()
                .filter(|(_, since)| now.duration_since(*since) < super::ORPHAN_TTL)
                .map(|(s, _)| *s),
        );
        busy.sort();
        busy.dedup();
        busy.retain(|k| *k != SessionKey::BRIDGE);
        busy
    }

    /// Stateless origins have no GET stream: a log message goes to the POST stream of the one
    /// stateless request in flight, when exactly one request of any origin is in flight.
    fn deliver_to_stateless(&mut self, event: &Bytes) {
        let busy = self.busy_sessions();
        if let [only] = busy.as_slice() {
            let requests = self.map.requests_of(*only);
            if requests.len() == 1 && self.sessions.by_key(*only).is_none() {
                self.deliver_related(requests[0], event.clone());
            }
        }
    }

    /// Offers `event` to a session's GET stream; true when queued.
    pub(super) fn deliver_to_session(&mut self, key: SessionKey, event: Bytes) -> bool {
        let Some(session) = self.sessions.by_key(key) else {
            return false;
        };
        match session.deliver(event) {
            Delivery::Queued => true,
            Delivery::NoStream => false,
            Delivery::SlowConsumer => {
                tracing::warn!(session.id = %session.id, "GET stream closed: the client is not reading (slow consumer)");
                self.metrics.sessions.slow_consumers.inc();
                false
            }
        }
    }

    /// Offers `event` to every in-scope session's GET stream that `filter` accepts.
    fn broadcast(&mut self, event: Bytes, filter: impl Fn(&crate::session::Session) -> bool) {
        let scope = self.options.scope;
        let slow = self
            .sessions
            .broadcast(&event, |s| scope.is_none_or(|k| k == s.key) && filter(s));
        self.metrics.sessions.slow_consumers.inc_by(slow as u64);
    }

    pub(super) fn handle_exit(&mut self, info: ExitInfo) {
        let how = format!("child process {info}");
        for (_, entry) in self.map.drain() {
            let _ = entry
                .payload
                .reply
                .send(Err(RouteError::Unavailable(how.clone())));
        }
        self.exited = Some(how);
        self.orphans.clear();
        self.timeouts.clear();
        self.server_requests.clear();
        self.server_by_child.clear();
    }
}

/// The `taskId` of the related-task `_meta` of a message's params, if any.
pub(super) fn related_task(params: &Value) -> Option<&str> {
    params
        .get("_meta")?
        .get(RELATED_TASK)?
        .get("taskId")?
        .as_str()
}
