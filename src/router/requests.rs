//! The router's handling of what clients send: requests (with progress-token rewriting and the
//! methods the bridge answers or adjusts itself: subscriptions, log level, tasks), notifications
//! (cancellation), and responses to what the child asked for. Also the writing of lines to the
//! child's stdin.

use super::{After, Direction, Pending, RouteError, Router, UpstreamId};
use crate::jsonrpc::{self, Message, RequestId};
use crate::session::replay::EventLog;
use crate::session::{LogLevel, SessionKey};
use bytes::Bytes;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// The `_meta` key a 2025-11-25 message uses to name the task it relates to.
pub(super) const RELATED_TASK: &str = "io.modelcontextprotocol/related-task";

/// The reason given to the child when a client cancels its own request.
const CLIENT_CANCEL: &str = "cancelled by the client";

/// What the router does with one client request.
enum Plan {
    /// Forward to the child (params possibly rewritten).
    Forward(After),
    /// Answer locally with this result JSON.
    Local(&'static str),
    /// Answer locally with a JSON-RPC error.
    Refuse(i64, String),
}

impl Router {
    pub(super) fn forward_request(
        &mut self,
        session: SessionKey,
        mut msg: Message,
        reply: oneshot::Sender<super::Reply>,
        stream: Option<Arc<EventLog>>,
    ) {
        let id = msg.request_id().cloned().expect("requests carry ids");
        if let Some(how) = &self.exited {
            let _ = reply.send(Err(RouteError::Unavailable(how.clone())));
            return;
        }
        if self.map.upstream_of(session, &id).is_some() {
            let _ = reply.send(Err(RouteError::DuplicateId(id)));
            return;
        }
        let mut params = match parse_params_if_needed(&msg) {
            Ok(params) => params,
            Err(text) => {
                let _ = reply.send(Ok(Bytes::from(jsonrpc::error_response(
                    Some(&id),
                    jsonrpc::INVALID_PARAMS,
                    &text,
                ))));
                return;
            }
        };
        let after = match self.plan(session, msg.method(), params.as_mut()) {
            Plan::Forward(after) => after,
            Plan::Local(result) => {
                let raw =
                    serde_json::value::RawValue::from_string(result.into()).expect("valid JSON");
                let _ = reply.send(Ok(Bytes::from(jsonrpc::result_response(&id, &raw))));
                return;
            }
            Plan::Refuse(code, text) => {
                let _ = reply.send(Ok(Bytes::from(jsonrpc::error_response(
                    Some(&id),
                    code,
                    &text,
                ))));
                return;
            }
        };
        let pending = Pending {
            reply,
            stream,
            progress: None,
            after,
        };
        let up = self
            .map
            .allocate(session, id, pending)
            .expect("checked for duplicates above");
        if let Some(p) = params.as_mut() {
            let token = p.get_mut("_meta").and_then(|m| m.get_mut("progressToken"));
            if let Some(token) = token {
                let original = std::mem::replace(token, json!(up.0));
                self.map
                    .get_mut(up)
                    .expect("just allocated")
                    .payload
                    .progress = Some(original);
            }
            msg.params = Some(serde_json::value::to_raw_value(p).expect("values serialize"));
        }
        tracing::trace!(
            rpc.method = msg.method(),
            upstream.id = up.0,
            "forwarding request"
        );
        let is_set_level = msg.method() == "logging/setLevel";
        if let Err(err) = self.write_line(msg.to_json_with_id(Some(&up))) {
            // Nothing reached the child: undo what planning recorded, so a retry goes through.
            if let Some(entry) = self.map.resolve(up) {
                if let After::Subscribed(uri) = &entry.payload.after {
                    self.subscriptions.unsubscribe(uri, session);
                }
                let _ = entry.payload.reply.send(Err(err));
            }
            if is_set_level {
                self.child_level = None;
            }
        }
    }

    /// Decides how to handle a request by method, updating subscription and log-level state.
    fn plan(&mut self, session: SessionKey, method: &str, params: Option<&mut Value>) -> Plan {
        let param = |name: &str| {
            params
                .as_ref()
                .and_then(|p| p.get(name))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        match method {
            "resources/subscribe" | "resources/unsubscribe" => {
                let Some(uri) = param("uri") else {
                    return Plan::Refuse(
                        jsonrpc::INVALID_PARAMS,
                        format!("{method} needs params.uri"),
                    );
                };
                self.plan_subscription(session, method == "resources/subscribe", uri)
            }
            "logging/setLevel" => {
                let Some(level) = param("level").as_deref().and_then(LogLevel::parse) else {
                    return Plan::Refuse(jsonrpc::INVALID_PARAMS, "logging/setLevel needs params.level: one of debug, info, notice, warning, error, critical, alert, emergency".into());
                };
                self.plan_set_level(session, level, params)
            }
            "tasks/list" if self.options.scope.is_none() => Plan::Forward(After::TasksList),
            "tasks/get" | "tasks/result" | "tasks/cancel" => {
                // Shared mode fails closed: a task id no session of ours owns is refused.
                let owner = param("taskId").and_then(|t| self.tasks.owner(&t));
                match owner {
                    Some(owner) if owner == session => Plan::Forward(After::Nothing),
                    _ if self.options.scope.is_some() => Plan::Forward(After::Nothing),
                    _ => Plan::Refuse(jsonrpc::INVALID_PARAMS, "unknown taskId".into()),
                }
            }
            _ if params
                .as_ref()
                .is_some_and(|p| p.get("task").is_some_and(Value::is_object)) =>
            {
                Plan::Forward(After::TaskCreate)
            }
            _ => Plan::Forward(After::Nothing),
        }
    }

    fn plan_subscription(&mut self, session: SessionKey, subscribe: bool, uri: String) -> Plan {
        if subscribe {
            if self.subscriptions.is_subscribed(&uri, session)
                || !self.subscriptions.subscribe(&uri, session)
            {
                return Plan::Local("{}");
            }
            return Plan::Forward(After::Subscribed(uri));
        }
        if self.subscriptions.unsubscribe(&uri, session) {
            Plan::Forward(After::Nothing)
        } else {
            Plan::Local("{}")
        }
    }

    fn plan_set_level(
        &mut self,
        session: SessionKey,
        level: LogLevel,
        params: Option<&mut Value>,
    ) -> Plan {
        if let Some(s) = self.sessions.by_key(session) {
            s.set_log_level(level);
        }
        let wanted = self.most_verbose_level(None).unwrap_or(level);
        if self.child_level == Some(wanted) {
            return Plan::Local("{}");
        }
        self.child_level = Some(wanted);
        if let Some(p) = params {
            p["level"] = json!(wanted.name());
        }
        Plan::Forward(After::Nothing)
    }

    /// The most verbose level any session in scope (other than `except`) asked for.
    pub(super) fn most_verbose_level(&self, except: Option<SessionKey>) -> Option<LogLevel> {
        self.sessions
            .all()
            .iter()
            .filter(|s| self.in_scope(s.key) && Some(s.key) != except)
            .filter_map(|s| s.log_level())
            .min()
    }

    /// A restarted, re-initialized child: subscribe it again to every URI sessions want, set its
    /// log level again, and send every session `notifications` (list-changed methods) so that
    /// clients refetch what may have changed.
    pub(super) fn restore(&mut self, notifications: Vec<&'static str>) {
        for uri in self.subscriptions.uris() {
            self.send_bridge_request("resources/subscribe", json!({ "uri": uri }));
        }
        self.update_child_level(None);
        for method in notifications {
            let note = json!({ "jsonrpc": "2.0", "method": method });
            let event = crate::transport::sse::message_event(
                &serde_json::to_vec(&note).expect("serializes"),
            );
            let scope = self.options.scope;
            let slow = self
                .sessions
                .broadcast(&event, |s| scope.is_none_or(|k| k == s.key));
            self.metrics.sessions.slow_consumers.inc_by(slow as u64);
        }
    }

    /// After a session ended: tell the child the most verbose level still wanted, if it changed.
    pub(super) fn update_child_level(&mut self, ended: Option<SessionKey>) {
        let Some(wanted) = self.most_verbose_level(ended) else {
            return;
        };
        if self.child_level != Some(wanted) {
            self.child_level = Some(wanted);
            self.send_bridge_request("logging/setLevel", json!({ "level": wanted.name() }));
        }
    }

    /// True when `session` is one this router serves.
    pub(super) fn in_scope(&self, session: SessionKey) -> bool {
        self.options.scope.is_none_or(|k| k == session)
    }

    /// Applies the response's post-processing and hands it to its waiter with the client's id.
    pub(super) fn finish(&mut self, entry: crate::router::idmap::Entry<Pending>, mut msg: Message) {
        let session = entry.session;
        match &entry.payload.after {
            After::Nothing => {}
            After::Subscribed(uri) if msg.error.is_some() => {
                self.subscriptions.unsubscribe(uri, session);
            }
            After::Subscribed(_) => {}
            After::TaskCreate => {
                let task = result_value(&msg)
                    .and_then(|r| r["task"]["taskId"].as_str().map(str::to_string));
                if let Some(task_id) = task {
                    self.tasks.insert(&task_id, session);
                }
            }
            After::TasksList => {
                if let Some(mut result) = result_value(&msg) {
                    if let Some(list) = result.get_mut("tasks").and_then(Value::as_array_mut) {
                        list.retain(|t| {
                            t["taskId"].as_str().and_then(|id| self.tasks.owner(id))
                                == Some(session)
                        });
                    }
                    msg.result =
                        Some(serde_json::value::to_raw_value(&result).expect("values serialize"));
                }
            }
        }
        let bytes = Bytes::from(msg.to_json_with_id(Some(&entry.client_id)));
        let _ = entry.payload.reply.send(Ok(bytes));
    }

    pub(super) fn forward_notification(&mut self, session: SessionKey, msg: Message) {
        match msg.method() {
            "notifications/cancelled" => {
                let id = msg
                    .params
                    .as_deref()
                    .and_then(|p| serde_json::from_str::<Value>(p.get()).ok());
                let id = id
                    .and_then(|v| serde_json::from_value::<RequestId>(v["requestId"].clone()).ok());
                if let Some(id) = id {
                    if self.server_requests.contains_key(&(session, id.clone())) {
                        // The client gives up on the child's request: the child gets an error.
                        self.answer_child_request_error(
                            session,
                            &id,
                            jsonrpc::REQUEST_CANCELLED,
                            "the client cancelled the request",
                        );
                    } else {
                        self.cancel(session, &id, CLIENT_CANCEL);
                    }
                }
                return;
            }
            // The shared child was offered no `roots.listChanged` by the sessions: only the
            // bridge's own roots exist there.
            "notifications/roots/list_changed" if self.options.scope.is_none() => return,
            _ => {}
        }
        if let Err(e) = self.write_line(msg.to_json_with_id::<RequestId>(None)) {
            tracing::debug!(error = %e, "client notification not forwarded");
        }
    }

    /// Cancels a client's in-flight request: its waiter gets an error, the child a
    /// `notifications/cancelled` with the upstream id. Unknown ids are ignored (spec: MAY ignore).
    pub(super) fn cancel(&mut self, session: SessionKey, id: &RequestId, reason: &'static str) {
        let Some(up) = self.map.upstream_of(session, id) else {
            return;
        };
        if let Some(entry) = self.map.resolve(up) {
            let err = match reason {
                CLIENT_CANCEL => RouteError::CancelledByClient,
                other => RouteError::Cancelled(other),
            };
            let _ = entry.payload.reply.send(Err(err));
            self.orphan(up, session);
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

    /// Sends a request of the bridge's own to the child; its response is discarded.
    pub(super) fn send_bridge_request(&mut self, method: &str, params: Value) {
        let (reply, _) = oneshot::channel();
        let client_id = RequestId::String(format!("bridge-{}", self.next_server_id));
        self.next_server_id += 1;
        let pending = Pending {
            reply,
            stream: None,
            progress: None,
            after: After::Nothing,
        };
        let Ok(up) = self.map.allocate(SessionKey::BRIDGE, client_id, pending) else {
            return;
        };
        let line = json!({ "jsonrpc": "2.0", "id": up.0, "method": method, "params": params });
        if self
            .write_line(serde_json::to_vec(&line).expect("json! serializes"))
            .is_err()
        {
            self.map.resolve(up);
        }
    }

    /// Queues one message for the child's stdin as a single line. Raw `\r`/`\n` in JSON text can
    /// only be insignificant whitespace, so they become spaces (stdio framing forbids embedded
    /// newlines). Errors: [`RouteError::Overloaded`] when the queue is full,
    /// [`RouteError::Unavailable`] when the child's stdin is closed.
    pub(super) fn write_line(&mut self, mut line: Vec<u8>) -> Result<(), RouteError> {
        jsonrpc::flatten_line_breaks(&mut line);
        line.push(b'\n');
        let len = line.len();
        tracing::trace!(target: "mcp_bridge::wire", { child.pid = self.pid, direction = "to_child", body = %String::from_utf8_lossy(&line[..len - 1]) }, "message");
        // Raised before the send: the writer task lowers it as soon as it takes the line.
        self.metrics.child.queue_depth.inc();
        match self.stdin.try_send(Bytes::from(line)) {
            Ok(()) => {
                self.metrics.router.message(Direction::ToChild, len);
                Ok(())
            }
            Err(e) => {
                self.metrics.child.queue_depth.dec();
                Err(match e {
                    mpsc::error::TrySendError::Full(_) => RouteError::Overloaded,
                    mpsc::error::TrySendError::Closed(_) => RouteError::Unavailable(
                        self.exited
                            .clone()
                            .unwrap_or_else(|| "its stdin is closed".into()),
                    ),
                })
            }
        }
    }
}

/// Parses `params` only when the router may need to look inside: a progress token, a task
/// request, or a method the bridge handles itself. `Ok(None)`: not needed, or not an object.
/// Errors: params the router needs but cannot read (JSON nested deeper than serde_json's limit
/// of 128 levels); forwarding them unread would hand the child the client's own progress token,
/// which could then name another session's request.
fn parse_params_if_needed(msg: &Message) -> Result<Option<Value>, String> {
    let Some(raw) = msg.params.as_deref().map(RawValue::get) else {
        return Ok(None);
    };
    let method = msg.method();
    // A `\u` escape can spell any key (`"progress\u0054oken"`), so such params are read too.
    let needed = raw.contains("progressToken")
        || raw.contains("\"task\"")
        || raw.contains("\\u")
        || method == "resources/subscribe"
        || method == "resources/unsubscribe"
        || method.starts_with("tasks/")
        || method == "logging/setLevel";
    if !needed {
        return Ok(None);
    }
    match serde_json::from_str::<Value>(raw) {
        Ok(v) => Ok(Some(v).filter(Value::is_object)),
        Err(e) => Err(format!(
            "Invalid params: the bridge must read these params (progress token, task or {method}) but cannot: {e}"
        )),
    }
}

/// The `result` of a response as a JSON value.
fn result_value(msg: &Message) -> Option<Value> {
    serde_json::from_str(msg.result.as_deref()?.get()).ok()
}
