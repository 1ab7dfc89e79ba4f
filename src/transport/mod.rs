//! Client-facing transports: Streamable HTTP (this issue) and the shared SSE encoder, plus the
//! response body type they all use.

pub mod sse;
pub mod streamable_http;

use bytes::Bytes;
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full};
use std::convert::Infallible;

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
