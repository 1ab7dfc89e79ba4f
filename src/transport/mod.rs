//! Client-facing transports: Streamable HTTP (this issue) and the shared SSE encoder, plus the
//! response body type they all use.

mod connection;
pub mod sse;
pub mod sse_legacy;
pub mod streamable_http;
pub mod websocket;

use crate::error::HttpError;
use crate::jsonrpc;
use bytes::Bytes;
use http::{header, HeaderMap, Request, StatusCode};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full, Limited};
use hyper::body::Incoming;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::{counter::Counter, family::Family};
use prometheus_client::registry::Registry;
use std::convert::Infallible;

/// Why a request was refused before it reached a child, for `mcp_bridge_rejected_requests_total`.
pub const REJECT_REASONS: &[&str] = &["limit", "auth", "origin", "host", "size", "timeout"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

/// Metrics of the HTTP edge.
#[derive(Debug, Default)]
pub struct HttpMetrics {
    rejected: Family<ReasonLabels, Counter>,
}

impl HttpMetrics {
    /// Creates the handles and registers them in `r` (names below `mcp_bridge_`).
    pub fn register(r: &mut Registry) -> HttpMetrics {
        let m = HttpMetrics::default();
        for reason in REJECT_REASONS {
            let _ = m.rejected.get_or_create(&ReasonLabels { reason });
        }
        r.register(
            "rejected_requests",
            "Requests refused by reason: limit (429, session or child limits), auth (401, 403 scope), origin (403), host (421), size (413), timeout (no answer within --request-timeout or --queue-timeout)",
            m.rejected.clone(),
        );
        m
    }

    /// Counts one refused request; `reason` is one of [`REJECT_REASONS`].
    pub fn rejected(&self, reason: &'static str) {
        debug_assert!(REJECT_REASONS.contains(&reason), "{reason}");
        self.rejected.get_or_create(&ReasonLabels { reason }).inc();
    }
}

/// Response body of every handler: a full buffer or an SSE stream.
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// A body holding `bytes` in one piece.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

/// An empty body.
pub fn empty() -> Body {
    full(Bytes::new())
}

/// 415 unless the `Content-Type` is JSON (`application/json` or `*/*+json`); absent is tolerated.
pub fn check_content_type(headers: &HeaderMap) -> Result<(), HttpError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let media = value
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if media == "application/json" || media.ends_with("+json") {
        return Ok(());
    }
    Err(HttpError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        jsonrpc::INVALID_REQUEST,
        format!("Unsupported Media Type: Content-Type must be application/json, got {media:?}"),
    ))
}

/// Reads the whole body, at most `max` bytes: 413 above it (checked on `Content-Length` first).
pub async fn read_body(req: Request<Incoming>, max: usize) -> Result<Bytes, HttpError> {
    let too_large = || {
        HttpError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            jsonrpc::INVALID_REQUEST,
            format!("Payload Too Large: the body limit is {max} bytes (--max-body-bytes)"),
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    match Limited::new(req.into_body(), max).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(e) => Err(HttpError::bad_request(
            jsonrpc::PARSE_ERROR,
            format!("Bad Request: reading the body failed: {e}"),
        )),
    }
}
