//! JSON-RPC 2.0 message envelopes as MCP uses them (PROTOCOL.md section 3, "JSON-RPC base rules").
//!
//! Owns: parsing one message into a typed envelope whose `params`, `result` and `error` stay raw
//! JSON (the bridge never re-encodes payloads it only forwards), classifying it as request,
//! notification or response, and building error responses.
//!
//! Invariant: a [`Message`] that passed [`Message::kind`] is a valid JSON-RPC 2.0 message; ids are
//! strings or integers and keep their JSON type when they are written back out.

pub mod codec;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use std::fmt;

/// JSON-RPC error code for invalid JSON (JSON-RPC 2.0 section 5.1).
pub const PARSE_ERROR: i64 = -32700;
/// JSON-RPC error code for a JSON value that is not a valid request object.
pub const INVALID_REQUEST: i64 = -32600;
/// JSON-RPC error code for an unknown method.
pub const METHOD_NOT_FOUND: i64 = -32601;
/// JSON-RPC error code for invalid method parameters.
pub const INVALID_PARAMS: i64 = -32602;
/// JSON-RPC error code for an internal error of the bridge.
pub const INTERNAL_ERROR: i64 = -32603;
/// Server-defined code: the upstream (child) MCP server is not running or not initialized.
pub const UPSTREAM_UNAVAILABLE: i64 = -32000;
/// Server-defined code: the request timed out (same value the TypeScript SDK uses).
pub const REQUEST_TIMEOUT: i64 = -32001;
/// Server-defined code: the bridge refused the request because a bounded queue is full.
pub const OVERLOADED: i64 = -32002;
/// Server-defined code: the request was cancelled (by the client, a DELETE or shutdown).
pub const REQUEST_CANCELLED: i64 = -32800;

/// A JSON-RPC request id as MCP allows it: a string or an integer, never null
/// (PROTOCOL.md section 3). Serializes back to the same JSON type it was read from.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RequestId {
    /// An integer id such as `7`.
    Number(i64),
    /// A string id such as `"abc"`.
    String(String),
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestId::Number(n) => write!(f, "{n}"),
            RequestId::String(s) => write!(f, "{s:?}"),
        }
    }
}

/// The `id` member as it appeared: absent (notification), or some JSON value still to validate.
#[derive(Clone, Debug, PartialEq)]
pub enum IdField {
    /// A string or integer id.
    Valid(RequestId),
    /// `null`, a float, an object, ...: invalid in MCP.
    Invalid,
}

fn deserialize_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<IdField>, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    Ok(Some(match serde_json::from_value::<RequestId>(v) {
        Ok(id) => IdField::Valid(id),
        Err(_) => IdField::Invalid,
    }))
}

/// `result` kept as raw JSON text: present means `Some`, even when it is `null` (`"result":
/// null` is a JSON-RPC success response; serde's `Option` would read it as absent). `params` and
/// `error` keep serde's reading, so `"params": null` is dropped and `"error": null` beside a
/// result is ignored.
fn deserialize_raw<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Box<RawValue>>, D::Error> {
    Box::<RawValue>::deserialize(d).map(Some)
}

/// One JSON-RPC 2.0 message with its payload members kept as raw JSON text.
///
/// Members other than these six are dropped when the message is written back out.
#[derive(Debug, Deserialize)]
pub struct Message {
    /// Must be `"2.0"`; checked by [`Message::kind`].
    #[serde(default)]
    pub jsonrpc: Option<String>,
    /// `None` when absent (a notification); see [`IdField`].
    #[serde(default, deserialize_with = "deserialize_id")]
    pub id: Option<IdField>,
    /// The method name of a request or notification.
    #[serde(default)]
    pub method: Option<String>,
    /// Raw `params` JSON of a request or notification.
    #[serde(default)]
    pub params: Option<Box<RawValue>>,
    /// Raw `result` JSON of a success response.
    #[serde(default, deserialize_with = "deserialize_raw")]
    pub result: Option<Box<RawValue>>,
    /// Raw `error` JSON of an error response.
    #[serde(default)]
    pub error: Option<Box<RawValue>>,
}

/// What a valid [`Message`] is, per JSON-RPC 2.0 section 4 and 5.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Has `method` and an `id`: expects a response.
    Request,
    /// Has `method` and no `id`: never answered.
    Notification,
    /// Has an `id` and exactly one of `result` or `error`.
    Response,
}

/// Why a JSON value is not a valid JSON-RPC message; the text is the JSON-RPC error message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidMessage {
    /// The bytes are not JSON (maps to -32700).
    #[error("parse error: {0}")]
    Parse(String),
    /// JSON, but not a JSON-RPC 2.0 message (maps to -32600).
    #[error("invalid request: {0}")]
    Invalid(&'static str),
}

impl InvalidMessage {
    /// The JSON-RPC error code for this failure: -32700 or -32600.
    pub fn code(&self) -> i64 {
        match self {
            InvalidMessage::Parse(_) => PARSE_ERROR,
            InvalidMessage::Invalid(_) => INVALID_REQUEST,
        }
    }
}

impl Message {
    /// Parses one JSON-RPC message from `bytes` (UTF-8 JSON text).
    ///
    /// Errors: [`InvalidMessage::Parse`] for bytes that are not JSON,
    /// [`InvalidMessage::Invalid`] for JSON that is not a JSON-RPC object.
    pub fn parse(bytes: &[u8]) -> Result<Message, InvalidMessage> {
        let msg: Message = serde_json::from_slice(bytes).map_err(|e| {
            if e.is_data() {
                InvalidMessage::Invalid("not a JSON-RPC 2.0 message object")
            } else {
                InvalidMessage::Parse(e.to_string())
            }
        })?;
        msg.kind()?;
        Ok(msg)
    }

    /// Classifies the message, or says why it is not valid JSON-RPC 2.0.
    pub fn kind(&self) -> Result<Kind, InvalidMessage> {
        if self.jsonrpc.as_deref() != Some("2.0") {
            return Err(InvalidMessage::Invalid("\"jsonrpc\" must be \"2.0\""));
        }
        match (&self.method, &self.id) {
            (_, Some(IdField::Invalid)) => Err(InvalidMessage::Invalid(
                "\"id\" must be a string or an integer",
            )),
            (Some(_), Some(_)) => Ok(Kind::Request),
            (Some(_), None) => Ok(Kind::Notification),
            (None, Some(_)) if self.result.is_some() != self.error.is_some() => Ok(Kind::Response),
            (None, Some(_)) => Err(InvalidMessage::Invalid(
                "a response must carry exactly one of \"result\" or \"error\"",
            )),
            (None, None) => Err(InvalidMessage::Invalid("missing \"method\" and \"id\"")),
        }
    }

    /// The id of a request or response, if it is a valid one.
    pub fn request_id(&self) -> Option<&RequestId> {
        match &self.id {
            Some(IdField::Valid(id)) => Some(id),
            _ => None,
        }
    }

    /// The method name, or `""` for a response.
    pub fn method(&self) -> &str {
        self.method.as_deref().unwrap_or("")
    }

    /// Serializes the message as one line of compact JSON (no trailing newline), replacing the id
    /// with `id` when given. Output: `{"jsonrpc":"2.0","id":..,"method":..,"params":..}` with only
    /// the members that are present.
    pub fn to_json_with_id<I: Serialize>(&self, id: Option<&I>) -> Vec<u8> {
        let out = Outgoing {
            jsonrpc: "2.0",
            id,
            method: self.method.as_deref(),
            params: self.params.as_deref(),
            result: self.result.as_deref(),
            error: self.error.as_deref(),
        };
        serde_json::to_vec(&out).expect("serializing raw JSON members cannot fail")
    }
}

#[derive(Serialize)]
struct Outgoing<'a, I: Serialize> {
    jsonrpc: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a I>,
    #[serde(skip_serializing_if = "Option::is_none")]
    method: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    params: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a RawValue>,
}

/// Turns raw `\r`/`\n` bytes into spaces in place. In valid JSON text they can only be
/// insignificant whitespace, so the message is unchanged and fits on one line (a stdio frame or
/// an SSE `data:` line). Uses a SIMD search: messages almost never contain any.
pub fn flatten_line_breaks(json: &mut [u8]) {
    let mut from = 0;
    while let Some(pos) = memchr::memchr2(b'\n', b'\r', &json[from..]) {
        json[from + pos] = b' ';
        from += pos + 1;
    }
}

/// Builds a JSON-RPC error response `{"jsonrpc":"2.0","id":..,"error":{"code":..,"message":..}}`;
/// the `id` member is omitted when `id` is `None` (MCP schema 2025-11-25 allows that).
pub fn error_response(id: Option<&RequestId>, code: i64, message: &str) -> Vec<u8> {
    let mut v = serde_json::json!({
        "jsonrpc": "2.0",
        "error": { "code": code, "message": message },
    });
    if let Some(id) = id {
        v["id"] = serde_json::to_value(id).expect("ids serialize");
    }
    serde_json::to_vec(&v).expect("json! values serialize")
}

/// Builds a success response `{"jsonrpc":"2.0","id":..,"result":<result>}` from raw result JSON.
pub fn result_response(id: &RequestId, result: &RawValue) -> Vec<u8> {
    #[derive(Serialize)]
    struct Ok<'a> {
        jsonrpc: &'static str,
        id: &'a RequestId,
        result: &'a RawValue,
    }
    serde_json::to_vec(&Ok {
        jsonrpc: "2.0",
        id,
        result,
    })
    .expect("raw JSON serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_breaks_become_spaces_and_nothing_else_changes() {
        let mut text = b"{\r\n \"a\": \"x\\ny\",\n\"b\":\r1}\n".to_vec();
        flatten_line_breaks(&mut text);
        assert_eq!(text, b"{   \"a\": \"x\\ny\", \"b\": 1} ".to_vec());
        let mut none = b"{}".to_vec();
        flatten_line_breaks(&mut none);
        assert_eq!(none, b"{}");
    }

    #[test]
    fn classifies_requests_notifications_and_responses() {
        let req = Message::parse(br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#).unwrap();
        assert_eq!(req.kind().unwrap(), Kind::Request);
        let note = Message::parse(br#"{"jsonrpc":"2.0","method":"notifications/x"}"#).unwrap();
        assert_eq!(note.kind().unwrap(), Kind::Notification);
        let resp = Message::parse(br#"{"jsonrpc":"2.0","id":"a","result":{}}"#).unwrap();
        assert_eq!(resp.kind().unwrap(), Kind::Response);
    }

    #[test]
    fn rejects_null_and_float_ids_and_bad_versions() {
        for bad in [
            r#"{"jsonrpc":"2.0","id":null,"method":"x"}"#,
            r#"{"jsonrpc":"2.0","id":1.5,"method":"x"}"#,
            r#"{"jsonrpc":"1.0","id":1,"method":"x"}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":{},"error":{}}"#,
            r#"{"jsonrpc":"2.0"}"#,
            r#"[1,2]"#,
            r#""text""#,
        ] {
            let err = Message::parse(bad.as_bytes()).unwrap_err();
            assert_eq!(err.code(), INVALID_REQUEST, "{bad}");
        }
        assert_eq!(Message::parse(b"{nope").unwrap_err().code(), PARSE_ERROR);
    }

    #[test]
    fn keeps_id_type_and_raw_params_when_rewriting() {
        let m =
            Message::parse(br#"{"jsonrpc":"2.0","id":"7","method":"m","params":{"a": [1, 2]}}"#)
                .unwrap();
        assert_eq!(m.request_id(), Some(&RequestId::String("7".into())));
        let out = m.to_json_with_id(Some(&42u64));
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"jsonrpc":"2.0","id":42,"method":"m","params":{"a": [1, 2]}}"#
        );
        let back = m.to_json_with_id(m.request_id());
        assert!(std::str::from_utf8(&back).unwrap().contains(r#""id":"7""#));
    }

    #[test]
    fn error_response_omits_missing_id() {
        let out = error_response(None, PARSE_ERROR, "bad");
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert!(v.get("id").is_none());
        assert_eq!(v["error"]["code"], PARSE_ERROR);
        let out = error_response(Some(&RequestId::Number(3)), INTERNAL_ERROR, "x");
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["id"], 3);
    }
}
