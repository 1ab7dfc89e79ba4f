//! The bridge's own handshake with the shared child and the cache that answers every session's
//! `initialize` (DESIGN.md section 2, "Initialize once"; PROTOCOL.md section 3).
//!
//! Invariant: the cached `InitializeResult` is the child's, verbatim, except `protocolVersion`,
//! which is replaced by each session's negotiated version.

use super::{RouteError, RouterHandle};
use crate::jsonrpc::{self, Message, RequestId};
use crate::protocol;
use crate::session::SessionKey;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;

/// The child's `InitializeResult`, pre-rendered once per supported protocol version.
#[derive(Debug)]
pub struct InitCache {
    /// The child's result as it answered the bridge.
    pub result: Value,
    by_version: HashMap<&'static str, Box<RawValue>>,
}

impl InitCache {
    /// Builds the cache from the child's `InitializeResult` object.
    pub fn new(result: Value) -> Self {
        let by_version = protocol::SUPPORTED_VERSIONS
            .iter()
            .map(|v| {
                let mut r = result.clone();
                r["protocolVersion"] = json!(v);
                let raw = serde_json::value::to_raw_value(&r).expect("values serialize");
                (*v, raw)
            })
            .collect();
        InitCache { result, by_version }
    }

    /// The response to a session's `initialize` request `id` that negotiated `version`
    /// (an entry of [`protocol::SUPPORTED_VERSIONS`]): compact JSON bytes.
    pub fn response(&self, id: &RequestId, version: &'static str) -> Vec<u8> {
        let raw = self
            .by_version
            .get(version)
            .expect("negotiated versions are supported ones");
        jsonrpc::result_response(id, raw)
    }

    /// The server name the child reported in `serverInfo.name`, if any (for logs).
    pub fn server_name(&self) -> &str {
        self.result["serverInfo"]["name"].as_str().unwrap_or("")
    }
}

/// Why the bridge could not initialize the child.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// No answer, or the child went away.
    #[error("initialize failed: {0}")]
    Route(#[from] RouteError),
    /// The child answered with a JSON-RPC error (its text included).
    #[error("the child rejected initialize: {0}")]
    Rejected(String),
    /// The child's answer was not an `InitializeResult`.
    #[error("the child's initialize response is malformed: {0}")]
    Malformed(String),
}

/// Sends the bridge's own `initialize` (newest protocol version, the client `capabilities` the
/// bridge can honour, its own `clientInfo`) and then `notifications/initialized`; returns the cache built from the result.
/// Waits at most `timeout` for the response.
pub async fn initialize_child(
    router: &RouterHandle,
    timeout: Duration,
    capabilities: Value,
) -> Result<InitCache, InitError> {
    let request = json!({
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {
            "protocolVersion": protocol::LATEST_VERSION,
            "capabilities": capabilities,
            "clientInfo": { "name": "mcp-bridge", "version": env!("CARGO_PKG_VERSION") },
        },
    });
    let msg =
        Message::parse(&serde_json::to_vec(&request).expect("serializes")).expect("valid request");
    let bytes = router.call(SessionKey::BRIDGE, msg, timeout, None).await?;
    let response: Value =
        serde_json::from_slice(&bytes).map_err(|e| InitError::Malformed(e.to_string()))?;
    if let Some(err) = response.get("error") {
        return Err(InitError::Rejected(err.to_string()));
    }
    let result = response.get("result").cloned().unwrap_or(Value::Null);
    if !result.is_object() || !result["capabilities"].is_object() {
        return Err(InitError::Malformed("missing result.capabilities".into()));
    }
    let note = br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    router
        .notify(SessionKey::BRIDGE, Message::parse(note).expect("valid"))
        .await;
    Ok(InitCache::new(result))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_replaces_only_the_protocol_version() {
        let cache = InitCache::new(json!({
            "protocolVersion": "2025-06-18",
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "x", "version": "1"},
        }));
        let out = cache.response(&RequestId::String("a".into()), "2025-03-26");
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["id"], "a");
        assert_eq!(v["result"]["protocolVersion"], "2025-03-26");
        assert_eq!(v["result"]["capabilities"]["tools"], json!({}));
        assert_eq!(cache.server_name(), "x");
    }
}
