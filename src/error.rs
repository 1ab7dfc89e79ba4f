//! The one place that turns failures into HTTP responses (STYLE.md practice 8): a status code, a
//! JSON-RPC error object with a message a person can act on, and the headers the status needs.

use crate::jsonrpc::{self, RequestId};
use crate::transport::{full, Body};
use http::{header, HeaderValue, Response, StatusCode};

/// Response extension naming why a request was refused (see [`HttpError::reject_reason`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RejectReason(pub &'static str);

/// An HTTP error answer with a JSON-RPC error body (PROTOCOL.md sections 2.3, 2.5 and 9 item 3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError {
    /// HTTP status.
    pub status: StatusCode,
    /// JSON-RPC error code in the body.
    pub code: i64,
    /// Human-readable message in the body.
    pub message: String,
    /// The request id the error answers, when known.
    pub id: Option<RequestId>,
    /// Value of the `Allow` header (for 405).
    pub allow: Option<&'static str>,
    /// Seconds for the `Retry-After` header (for 429/503).
    pub retry_after: Option<u32>,
    /// Value of the `WWW-Authenticate` header (for 401, 403 and 503 from authentication).
    pub www_authenticate: Option<Box<HeaderValue>>,
}

impl HttpError {
    /// An error with `status`, JSON-RPC `code` and `message`, no id and no extra headers.
    pub fn new(status: StatusCode, code: i64, message: impl Into<String>) -> Self {
        HttpError {
            status,
            code,
            message: message.into(),
            id: None,
            allow: None,
            retry_after: None,
            www_authenticate: None,
        }
    }

    /// 400 with JSON-RPC code `code` (e.g. -32700 parse error, -32600 invalid request).
    pub fn bad_request(code: i64, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 404 for a session id the bridge does not know (never issued, deleted or expired).
    pub fn unknown_session() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            jsonrpc::INVALID_REQUEST,
            "Not Found: unknown or expired Mcp-Session-Id; send a new initialize request without a session id",
        )
    }

    /// 400 for a non-initialize request without `Mcp-Session-Id`.
    pub fn missing_session() -> Self {
        Self::bad_request(
            jsonrpc::INVALID_REQUEST,
            "Bad Request: the Mcp-Session-Id header is required (send initialize first to obtain one)",
        )
    }

    /// 405 with `Allow: allow`.
    pub fn method_not_allowed(allow: &'static str) -> Self {
        HttpError {
            allow: Some(allow),
            ..Self::new(
                StatusCode::METHOD_NOT_ALLOWED,
                jsonrpc::INVALID_REQUEST,
                format!("Method Not Allowed: this endpoint accepts {allow}"),
            )
        }
    }

    /// 503 with `Retry-After: secs`.
    pub fn unavailable(code: i64, message: impl Into<String>, secs: u32) -> Self {
        HttpError {
            retry_after: Some(secs),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
        }
    }

    /// Why this error refuses a request, for `mcp_bridge_rejected_requests_total`: `limit`
    /// (429, or 503 with the overloaded code), `size` (413), `host` (421), `origin` (403 without
    /// a challenge), `auth` (401, or 403 with a challenge); `None` for other errors.
    pub fn reject_reason(&self) -> Option<&'static str> {
        match self.status {
            StatusCode::TOO_MANY_REQUESTS => Some("limit"),
            StatusCode::SERVICE_UNAVAILABLE if self.code == jsonrpc::OVERLOADED => Some("limit"),
            StatusCode::PAYLOAD_TOO_LARGE => Some("size"),
            StatusCode::MISDIRECTED_REQUEST => Some("host"),
            StatusCode::UNAUTHORIZED => Some("auth"),
            StatusCode::FORBIDDEN if self.www_authenticate.is_some() => Some("auth"),
            StatusCode::FORBIDDEN => Some("origin"),
            _ => None,
        }
    }

    /// Sets the request id the error answers.
    pub fn with_id(mut self, id: Option<&RequestId>) -> Self {
        self.id = id.cloned();
        self
    }

    /// Renders the response: `application/json` JSON-RPC error body plus status and headers; a
    /// [`RejectReason`] extension carries [`HttpError::reject_reason`] to the metrics.
    pub fn into_response(self) -> Response<Body> {
        let reason = self.reject_reason();
        let body = jsonrpc::error_response(self.id.as_ref(), self.code, &self.message);
        let mut resp = Response::new(full(body));
        *resp.status_mut() = self.status;
        if let Some(reason) = reason {
            resp.extensions_mut().insert(RejectReason(reason));
        }
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(allow) = self.allow {
            h.insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        if let Some(secs) = self.retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(challenge) = self.www_authenticate {
            h.insert(header::WWW_AUTHENTICATE, *challenge);
        }
        resp
    }
}
