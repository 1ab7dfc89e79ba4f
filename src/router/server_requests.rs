//! Server-to-client requests (PROTOCOL.md section 4.6): the child asks a client for sampling,
//! elicitation or roots. The router answers `ping` (and, in shared mode, `roots/list` from
//! `--roots`) itself; it forwards sampling and elicitation only to a session it can attribute
//! the request to without doubt, with a bridge-chosen id, and gives the child a JSON-RPC error at
//! once when it cannot, or when the client does not answer in time (DESIGN.md section 2).

use super::child_side::related_task;
use super::{Router, ServerRequest, UpstreamId};
use crate::jsonrpc::{self, Message, RequestId};
use crate::session::SessionKey;
use crate::transport::sse;
use serde_json::{json, Value};

impl Router {
    pub(super) fn handle_child_request(&mut self, msg: Message) {
        let child_id = msg.request_id().cloned().expect("requests carry ids");
        let shared = self.options.scope.is_none();
        let refuse = |what: &str| format!("mcp-bridge cannot forward {:?}: {what}", msg.method());
        let outcome = match msg.method() {
            "ping" => Ok(json!({})),
            "roots/list" if shared && !self.options.roots.is_empty() => {
                let roots: Vec<Value> = self
                    .options
                    .roots
                    .iter()
                    .map(|r| json!({"uri": r.uri, "name": r.name}))
                    .collect();
                Ok(json!({ "roots": roots }))
            }
            "sampling/createMessage" if shared && !self.options.forward_sampling => Err(refuse(
                "sampling is not forwarded (start mcp-bridge with --forward sampling)",
            )),
            "elicitation/create" if shared && !self.options.forward_elicitation => Err(refuse(
                "elicitation is not forwarded (start mcp-bridge with --forward elicitation)",
            )),
            "sampling/createMessage" | "elicitation/create" => {
                return self.forward_to_client(msg, child_id)
            }
            _ if !shared => return self.forward_to_client(msg, child_id),
            _ => Err(refuse(
                "the bridge offered the child no such client capability",
            )),
        };
        let line = match outcome {
            Ok(result) => json!({ "jsonrpc": "2.0", "id": child_id, "result": result }),
            Err(text) => {
                json!({ "jsonrpc": "2.0", "id": child_id, "error": { "code": jsonrpc::METHOD_NOT_FOUND, "message": text } })
            }
        };
        let _ = self.write_line(serde_json::to_vec(&line).expect("serializes"));
    }

    fn forward_to_client(&mut self, msg: Message, child_id: RequestId) {
        let params: Value = msg
            .params
            .as_deref()
            .and_then(|p| serde_json::from_str(p.get()).ok())
            .unwrap_or(Value::Null);
        let (session, related) = match self.attribute(msg.method(), &params) {
            Ok(target) => target,
            Err(text) => {
                return self.write_child_error(&child_id, jsonrpc::METHOD_NOT_FOUND, &text)
            }
        };
        // Unguessable, so that no client can answer a request meant for another one.
        let bridge_id = RequestId::String(format!("{}-{}", self.id_prefix, self.next_server_id));
        self.next_server_id += 1;
        let event = sse::message_event(&msg.to_json_with_id(Some(&bridge_id)));
        let delivered = match related {
            Some(up) => self.deliver_related(up, event),
            None => self.deliver_to_session(session, event),
        };
        if !delivered {
            let text = format!(
                "mcp-bridge cannot forward {:?}: the session has no open stream to receive it",
                msg.method()
            );
            return self.write_child_error(&child_id, jsonrpc::INTERNAL_ERROR, &text);
        }
        if let Some(eid) = params["elicitationId"].as_str() {
            self.elicitations.insert(eid.to_string(), session);
        }
        let timeout = self.timeouts.insert(
            (session, bridge_id.clone()),
            self.options.client_request_timeout,
        );
        self.server_by_child
            .insert(child_id.clone(), (session, bridge_id.clone()));
        self.server_requests.insert(
            (session, bridge_id),
            ServerRequest {
                session,
                child_id,
                timeout,
            },
        );
    }

    /// Picks the session (and, when it has exactly one request in flight, that request) a
    /// server-to-client request belongs to. Errors say why no session can be chosen safely.
    fn attribute(
        &self,
        method: &str,
        params: &Value,
    ) -> Result<(SessionKey, Option<UpstreamId>), String> {
        let session = if let Some(owner) = related_task(params).and_then(|t| self.tasks.owner(t)) {
            owner
        } else if let Some(key) = self.options.scope {
            key
        } else {
            let busy = self.busy_sessions();
            match busy.as_slice() {
                [one] => *one,
                [] => {
                    return Err(format!(
                    "mcp-bridge cannot attribute {method:?}: no session has a request in flight"
                ))
                }
                many => {
                    return Err(format!(
                    "mcp-bridge cannot attribute {method:?}: {} sessions have requests in flight",
                    many.len()
                ))
                }
            }
        };
        // A stateless request's origin is no registered session: its client's capabilities are
        // unknown, and a client that lacks one answers with an error the child then gets.
        if let (None, Some(registered)) = (self.options.scope, self.sessions.by_key(session)) {
            let caps = registered.caps;
            let declared = match method {
                "sampling/createMessage" => caps.sampling,
                _ if params["mode"] == "url" => caps.elicitation_url,
                _ => caps.elicitation_form,
            };
            if !declared {
                return Err(format!("mcp-bridge cannot forward {method:?}: the session it belongs to did not declare that capability"));
            }
        }
        let requests = self.map.requests_of(session);
        Ok((
            session,
            if requests.len() == 1 {
                Some(requests[0])
            } else {
                None
            },
        ))
    }

    /// A client's response to a forwarded request: back to the child with the child's id.
    pub(super) fn handle_client_response(&mut self, session: SessionKey, msg: Message) {
        let Some(id) = msg.request_id().cloned() else {
            return;
        };
        // Stateless: every POST has a fresh origin key, so find the request by its id alone
        // (the ids the bridge hands out are unique per router).
        let session = match self.sessions.by_key(session) {
            Some(_) => session,
            None => self
                .server_requests
                .keys()
                .find(|(_, i)| *i == id)
                .map_or(session, |(s, _)| *s),
        };
        let Some(req) = self.take_server_request(session, &id) else {
            tracing::debug!(rpc.id = %id, "client response to no pending server request, dropped");
            return;
        };
        if let Err(e) = self.write_line(msg.to_json_with_id(Some(&req.child_id))) {
            tracing::debug!(error = %e, "client response not forwarded");
        }
    }

    /// The client did not answer in time: the child gets an error, the client a cancellation.
    pub(super) fn handle_client_timeout(&mut self, (session, id): (SessionKey, RequestId)) {
        let Some(req) = self.server_requests.remove(&(session, id.clone())) else {
            return;
        };
        self.server_by_child.remove(&req.child_id);
        let ms = self.options.client_request_timeout.as_millis();
        self.write_child_error(
            &req.child_id,
            jsonrpc::REQUEST_TIMEOUT,
            &format!("the client did not answer within {ms} ms"),
        );
        self.send_client_cancel(session, &id, "timed out in mcp-bridge");
    }

    /// Answers a pending server-to-client request of `session` with an error to the child.
    pub(super) fn answer_child_request_error(
        &mut self,
        session: SessionKey,
        id: &RequestId,
        code: i64,
        text: &str,
    ) {
        if let Some(req) = self.take_server_request(session, id) {
            self.write_child_error(&req.child_id, code, text);
        }
    }

    /// The session ended: every request the child sent it gets an error.
    pub(super) fn fail_server_requests_of(&mut self, session: SessionKey) {
        let ids: Vec<RequestId> = self
            .server_requests
            .keys()
            .filter(|(s, _)| *s == session)
            .map(|(_, id)| id.clone())
            .collect();
        for id in ids {
            self.answer_child_request_error(
                session,
                &id,
                jsonrpc::INTERNAL_ERROR,
                "the client session ended",
            );
        }
    }

    /// The child cancelled one of its own requests: pass the cancellation to the client.
    pub(super) fn route_child_cancel(&mut self, params: &Value) {
        let Ok(child_id) = serde_json::from_value::<RequestId>(params["requestId"].clone()) else {
            return;
        };
        let Some((session, id)) = self.server_by_child.get(&child_id).cloned() else {
            return;
        };
        self.take_server_request(session, &id);
        let reason = params["reason"]
            .as_str()
            .unwrap_or("cancelled by the server");
        self.send_client_cancel(session, &id, reason);
    }

    fn take_server_request(
        &mut self,
        session: SessionKey,
        id: &RequestId,
    ) -> Option<ServerRequest> {
        let req = self.server_requests.remove(&(session, id.clone()))?;
        self.timeouts.try_remove(&req.timeout);
        self.server_by_child.remove(&req.child_id);
        debug_assert_eq!(req.session, session);
        Some(req)
    }

    fn send_client_cancel(&mut self, session: SessionKey, id: &RequestId, reason: &str) {
        let note = json!({ "jsonrpc": "2.0", "method": "notifications/cancelled", "params": { "requestId": id, "reason": reason } });
        let event = sse::message_event(&serde_json::to_vec(&note).expect("serializes"));
        self.deliver_to_session(session, event);
    }

    fn write_child_error(&mut self, child_id: &RequestId, code: i64, text: &str) {
        tracing::debug!(rpc.id = %child_id, error = text, "server-to-client request refused");
        let _ = self.write_line(jsonrpc::error_response(Some(child_id), code, text));
    }
}
