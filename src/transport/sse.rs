//! Server-Sent Events encoding shared by the SSE-speaking transports (PROTOCOL.md section 9,
//! item 4): one JSON-RPC message per `event: message`, its JSON on a single `data:` line.

use super::Body;
use bytes::{BufMut, Bytes, BytesMut};
use http::{header, HeaderValue, Response};

/// A keep-alive comment; clients and proxies see traffic, SSE parsers ignore it.
pub const KEEP_ALIVE: &[u8] = b": keep-alive\n\n";

/// A 200 response streaming `body` as `text/event-stream`, with the headers that stop caches and
/// proxies from buffering it (`Cache-Control: no-cache`, `X-Accel-Buffering: no`).
pub fn response(body: Body) -> Response<Body> {
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    resp
}

/// Encodes one JSON-RPC message (compact JSON bytes) as an SSE `message` event.
/// Raw `\r`/`\n` bytes can only be insignificant whitespace in valid JSON text, so they are
/// turned into spaces: an event is always exactly one `data:` line.
pub fn message_event(json: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(json.len() + 24);
    out.put_slice(b"event: message\ndata: ");
    let start = out.len();
    out.put_slice(json);
    crate::jsonrpc::flatten_line_breaks(&mut out[start..]);
    out.put_slice(b"\n\n");
    out.freeze()
}

/// The JSON payload of an event made by [`message_event`] (a zero-copy slice), for transports
/// that carry bare JSON messages (WebSocket). Other bytes are returned unchanged.
pub fn message_payload(event: &Bytes) -> Bytes {
    const PREFIX: &[u8] = b"event: message\ndata: ";
    if event.starts_with(PREFIX) && event.ends_with(b"\n\n") {
        return event.slice(PREFIX.len()..event.len() - 2);
    }
    event.clone()
}

/// An SSE event of the legacy HTTP+SSE transport announcing where to POST messages.
pub fn endpoint_event(uri: &str) -> Bytes {
    Bytes::from(format!("event: endpoint\ndata: {uri}\n\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_data_line_per_event() {
        let ev = message_event(b"{\"a\":\r\n1}");
        assert_eq!(&ev[..], b"event: message\ndata: {\"a\":  1}\n\n");
        assert_eq!(&message_payload(&ev)[..], b"{\"a\":  1}");
        assert_eq!(
            &endpoint_event("/m?sessionId=1")[..],
            b"event: endpoint\ndata: /m?sessionId=1\n\n"
        );
    }
}
