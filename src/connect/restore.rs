//! What the local client set up in the remote session, kept so that a replacement session can
//! be told again after recovery: the last `logging/setLevel` (MCP 2025-11-25,
//! server/utilities/logging) and every `resources/subscribe` not since undone by
//! `resources/unsubscribe` (server/resources, Subscriptions). Without this a remote restart
//! would silently turn the client's log level back to the server's default and end its
//! subscriptions, though every later call works.
//!
//! Requests are noted as they are forwarded, before the remote answers: a subscription the
//! remote refused is repeated and refused again, which costs one round trip and changes
//! nothing. A later `initialize` from the local client starts over.

use super::http::Failure;
use crate::jsonrpc::{Kind, Message, RequestId};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Shared record of the session's setup; cheap to clone (one `Arc`).
#[derive(Clone, Debug, Default)]
pub struct SessionSetup {
    inner: Arc<Mutex<Setup>>,
}

#[derive(Debug, Default)]
struct Setup {
    /// The last `logging/setLevel` request, as sent.
    level: Option<Vec<u8>>,
    /// `resources/subscribe` requests by `params.uri`, as sent.
    subscriptions: BTreeMap<String, Vec<u8>>,
}

impl SessionSetup {
    /// Notes `message` (from the local client, `raw` its JSON) when it changes what the remote
    /// session holds: `logging/setLevel` replaces the level, `resources/subscribe` and
    /// `resources/unsubscribe` add and drop a URI (one without a string `params.uri` is
    /// ignored), `initialize` forgets everything. Other messages are ignored.
    pub fn observe(&self, message: &Message, raw: &[u8]) {
        if message.kind() != Ok(Kind::Request) {
            return;
        }
        // The lock is taken only for these few methods, not for every forwarded message.
        let setup = || self.inner.lock().expect("setup lock");
        match message.method() {
            "initialize" => *setup() = Setup::default(),
            "logging/setLevel" => setup().level = Some(raw.to_vec()),
            method @ ("resources/subscribe" | "resources/unsubscribe") => {
                let Some(uri) = uri(message) else { return };
                let subscriptions = &mut setup().subscriptions;
                match method == "resources/subscribe" {
                    true => subscriptions.insert(uri, raw.to_vec()),
                    false => subscriptions.remove(&uri),
                };
            }
            _ => {}
        }
    }

    /// The requests that restore the setup in a new session, the level first, each as one line
    /// of JSON under a reserved id (see [`restore_id`]; `session` numbers the new session, `k`
    /// the request) whose answer must not reach the local client. Empty when nothing was set.
    pub fn requests(&self, session: u64) -> Vec<(RequestId, Vec<u8>)> {
        let setup = self.inner.lock().expect("setup lock");
        let saved = setup.level.iter().chain(setup.subscriptions.values());
        saved
            .filter_map(|raw| Message::parse(raw).ok())
            .enumerate()
            .map(|(k, message)| {
                let id = restore_id(session, k as u64 + 1);
                let raw = message.to_json_with_id(Some(&id));
                (id, raw)
            })
            .collect()
    }
}

/// Logs how repeating one setup request went: `answer` is the remote's answer to it (never
/// forwarded) or why there was none. Returns true when the remote accepted it.
pub(crate) fn report(id: &RequestId, answer: Result<Vec<u8>, Failure>) -> bool {
    match answer {
        Ok(answer) if super::is_success(&answer) => {
            tracing::debug!(id = %id, "repeated the client's setup in the new session");
            true
        }
        Ok(answer) => {
            let answer = String::from_utf8_lossy(&answer);
            tracing::warn!(id = %id, %answer, "the new session refused a repeated setup request");
            false
        }
        Err(f) => {
            tracing::warn!(id = %id, error = %f, "repeating a setup request in the new session failed");
            false
        }
    }
}

/// `params.uri` of a subscription request.
fn uri(message: &Message) -> Option<String> {
    let params: serde_json::Value = serde_json::from_str(message.params.as_ref()?.get()).ok()?;
    params.get("uri")?.as_str().map(str::to_owned)
}

/// The reserved id of the `k`th restoring request in new session `session`:
/// `mcp-bridge-connect-restore-{session}-{k}`.
pub fn restore_id(session: u64, k: u64) -> RequestId {
    RequestId::String(format!(
        "{}restore-{session}-{k}",
        super::RESERVED_ID_PREFIX
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn observe(setup: &SessionSetup, message: Value) {
        let raw = serde_json::to_vec(&message).unwrap();
        setup.observe(&Message::parse(&raw).unwrap(), &raw);
    }

    fn request(id: i64, method: &str, params: Value) -> Value {
        json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
    }

    #[test]
    fn the_last_level_and_live_subscriptions_are_repeated_under_reserved_ids() {
        let setup = SessionSetup::default();
        assert!(setup.requests(1).is_empty());
        let steps = [
            ("logging/setLevel", json!({"level": "info"})),
            ("resources/subscribe", json!({"uri": "a://x"})),
            ("resources/subscribe", json!({"uri": "b://y"})),
            ("resources/unsubscribe", json!({"uri": "a://x"})),
            ("logging/setLevel", json!({"level": "error"})),
            // Nothing a session keeps, or no URI: ignored.
            ("resources/subscribe", json!({})),
            ("tools/list", json!({})),
        ];
        for (id, (method, params)) in steps.into_iter().enumerate() {
            observe(&setup, request(id as i64 + 1, method, params));
        }
        // A notification is not a request: ignored.
        observe(
            &setup,
            json!({"jsonrpc": "2.0", "method": "resources/subscribe", "params": {"uri": "c://z"}}),
        );
        let replay: Vec<(RequestId, Value)> = setup
            .requests(3)
            .into_iter()
            .map(|(id, raw)| (id, serde_json::from_slice(&raw).unwrap()))
            .collect();
        assert_eq!(
            replay,
            [
                (
                    restore_id(3, 1),
                    request(0, "logging/setLevel", json!({"level": "error"}))
                ),
                (
                    restore_id(3, 2),
                    request(0, "resources/subscribe", json!({"uri": "b://y"}))
                ),
            ]
            .map(|(id, mut message)| {
                message["id"] = serde_json::to_value(&id).unwrap();
                (id, message)
            })
        );
    }

    #[test]
    fn a_new_initialize_forgets_the_setup() {
        let setup = SessionSetup::default();
        observe(
            &setup,
            request(1, "logging/setLevel", json!({"level": "info"})),
        );
        observe(
            &setup,
            request(2, "resources/subscribe", json!({"uri": "a://x"})),
        );
        observe(&setup, request(3, "initialize", json!({})));
        assert!(setup.requests(1).is_empty());
    }
}
