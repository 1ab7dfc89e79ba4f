//! Bounded decoder of `text/event-stream` bodies (WHATWG HTML "Server-sent events", section
//! 9.2.6 "Interpreting an event stream"), for the client side of Streamable HTTP and HTTP+SSE.
//!
//! Owns: splitting a byte stream into events. Lines end in `\r\n`, `\n` or `\r`; a blank line
//! dispatches; `:` lines are comments (keep-alives); one space after the colon is dropped; `data`
//! lines are joined with `\n`; `id` containing NUL is ignored; `retry` must be all digits.
//! Invariant: no more than `max_event_bytes` are buffered for one event, so a remote that never
//! ends a line or an event costs bounded memory and gets [`SseError::TooLarge`].
//!
//! Framing is our core, so this is ours rather than a crate: `eventsource-stream` rescans the
//! whole buffer on every chunk (quadratic on large events) and has no size bound.

use bytes::{Buf, BytesMut};
use std::time::Duration;
use tokio_util::codec::Decoder;

/// One dispatched event: what a blank line closed. Fields that did not appear are `None`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event` field; `None` means the default type `message`.
    pub event: Option<String>,
    /// The `data` lines joined with `\n`; empty for a priming event (id only) or retry-only event.
    pub data: String,
    /// The `id` field of this event, when it had one (the new `Last-Event-ID`).
    pub id: Option<String>,
    /// The `retry` field: the reconnection delay the server asks for.
    pub retry: Option<Duration>,
}

impl SseEvent {
    /// True for events a JSON-RPC reader should take: type `message` (or none) with data.
    pub fn is_message(&self) -> bool {
        !self.data.is_empty() && self.event.as_deref().is_none_or(|e| e == "message")
    }
}

/// Why decoding stopped.
#[derive(Debug, thiserror::Error)]
pub enum SseError {
    /// One event (or one line) grew past the limit, in bytes.
    #[error("an SSE event is larger than {0} bytes")]
    TooLarge(usize),
    /// The body is not UTF-8.
    #[error("an SSE line is not UTF-8")]
    NotUtf8,
    /// Reading the body failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// [`Decoder`] from body bytes to [`SseEvent`]s with a size bound in bytes.
#[derive(Debug)]
pub struct SseDecoder {
    max_event_bytes: usize,
    /// The event being built.
    pending: SseEvent,
    /// Whether any field has been seen for it (a blank line after none dispatches nothing).
    seen_field: bool,
    /// Whether a `data` line has been seen for it (later ones are joined with `\n`).
    seen_data: bool,
    /// Bytes of the current event so far.
    event_bytes: usize,
    /// How far into the buffer we already looked for a line end.
    scanned: usize,
    /// True before the first line (a UTF-8 BOM there is skipped).
    at_start: bool,
}

impl SseDecoder {
    /// A decoder that refuses events (and lines) longer than `max_event_bytes`.
    pub fn new(max_event_bytes: usize) -> Self {
        SseDecoder {
            max_event_bytes,
            pending: SseEvent::default(),
            seen_field: false,
            seen_data: false,
            event_bytes: 0,
            scanned: 0,
            at_start: true,
        }
    }

    /// Applies one line (without its end). Returns an event when the line is blank.
    fn line(&mut self, line: &[u8]) -> Result<Option<SseEvent>, SseError> {
        if line.is_empty() {
            self.event_bytes = 0;
            self.seen_data = false;
            let dispatch = std::mem::take(&mut self.seen_field);
            return Ok(dispatch.then(|| std::mem::take(&mut self.pending)));
        }
        self.event_bytes += line.len();
        if self.event_bytes > self.max_event_bytes {
            return Err(SseError::TooLarge(self.max_event_bytes));
        }
        let line = std::str::from_utf8(line).map_err(|_| SseError::NotUtf8)?;
        let (field, value) = match line.split_once(':') {
            Some(("", _)) => return Ok(None), // a comment, such as a keep-alive
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "data" => {
                if std::mem::replace(&mut self.seen_data, true) {
                    self.pending.data.push('\n');
                }
                self.pending.data.push_str(value);
            }
            "event" => self.pending.event = Some(value.to_string()).filter(|v| !v.is_empty()),
            "id" if !value.contains('\0') => self.pending.id = Some(value.to_string()),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                let ms = value.parse::<u64>().unwrap_or(u64::MAX);
                self.pending.retry = Some(Duration::from_millis(ms));
            }
            _ => return Ok(None),
        }
        self.seen_field = true;
        Ok(None)
    }
}

impl Decoder for SseDecoder {
    type Item = SseEvent;
    type Error = SseError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<SseEvent>, SseError> {
        loop {
            if self.at_start {
                if buf.len() < 3 && b"\xEF\xBB\xBF".starts_with(&buf[..]) {
                    return Ok(None);
                }
                if buf.starts_with(b"\xEF\xBB\xBF") {
                    buf.advance(3);
                }
                self.at_start = false;
            }
            let Some(pos) = memchr::memchr2(b'\n', b'\r', &buf[self.scanned..]) else {
                self.scanned = buf.len();
                if self.event_bytes + buf.len() > self.max_event_bytes {
                    return Err(SseError::TooLarge(self.max_event_bytes));
                }
                return Ok(None);
            };
            let end = self.scanned + pos;
            // A `\r` at the end of the buffer may be the first half of `\r\n`: wait for more.
            if buf[end] == b'\r' && end + 1 == buf.len() {
                self.scanned = end;
                return Ok(None);
            }
            let skip = if buf[end] == b'\r' && buf[end + 1] == b'\n' {
                2
            } else {
                1
            };
            let line = buf.split_to(end);
            buf.advance(skip);
            self.scanned = 0;
            if let Some(event) = self.line(&line)? {
                return Ok(Some(event));
            }
        }
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<SseEvent>, SseError> {
        // A lone `\r` at the very end is a line end; an unterminated last line and an event
        // without its blank line are dropped, as the standard says.
        if buf.last() == Some(&b'\r') {
            buf.extend_from_slice(b"\n");
        }
        match self.decode(buf)? {
            Some(event) => Ok(Some(event)),
            None => {
                buf.clear();
                Ok(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(chunks: &[&[u8]], max: usize) -> Result<Vec<SseEvent>, SseError> {
        let mut d = SseDecoder::new(max);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for chunk in chunks {
            buf.extend_from_slice(chunk);
            while let Some(e) = d.decode(&mut buf)? {
                out.push(e);
            }
        }
        while let Some(e) = d.decode_eof(&mut buf)? {
            out.push(e);
        }
        Ok(out)
    }

    #[test]
    fn fields_comments_and_line_ends_follow_the_standard() {
        let text = b"\xEF\xBB\xBF: keepalive\r\nid: 7\r\nretry: 1500\r\ndata:\r\n\r\n\
            event: message\ndata: {\"a\":\ndata:  1}\n\nevent: endpoint\rdata: /m?s=1\r\r";
        let events = decode_all(&[text], 1024).unwrap();
        assert_eq!(events.len(), 3);
        assert_eq!(events[0].id.as_deref(), Some("7"));
        assert_eq!(events[0].retry, Some(Duration::from_millis(1500)));
        assert!(
            !events[0].is_message(),
            "a priming event carries no message"
        );
        assert_eq!(events[1].data, "{\"a\":\n 1}");
        assert!(events[1].is_message());
        assert_eq!(events[2].event.as_deref(), Some("endpoint"));
        assert_eq!(events[2].data, "/m?s=1");
        assert!(!events[2].is_message());
    }

    #[test]
    fn every_split_point_decodes_the_same() {
        let text: &[u8] =
            b"id: a\r\ndata: x\r\n\r\ndata: y\rdata: z\r\r: c\n\nretry: x1\ndata: w\n\n";
        let whole = decode_all(&[text], 1024).unwrap();
        assert_eq!(whole.len(), 3, "{whole:?}");
        assert_eq!(whole[1].data, "y\nz");
        assert_eq!(whole[2].retry, None, "a retry with non-digits is ignored");
        for cut in 0..text.len() {
            let parts = decode_all(&[&text[..cut], &text[cut..]], 1024).unwrap();
            assert_eq!(parts, whole, "split at {cut}");
        }
    }

    #[test]
    fn an_event_or_line_over_the_limit_is_an_error() {
        let long = format!("data: {}\n\n", "x".repeat(100));
        assert!(matches!(
            decode_all(&[long.as_bytes()], 64),
            Err(SseError::TooLarge(64))
        ));
        let endless = "y".repeat(100);
        assert!(matches!(
            decode_all(&[endless.as_bytes()], 64),
            Err(SseError::TooLarge(64))
        ));
        let many = "data: 12345678\n".repeat(10);
        assert!(matches!(
            decode_all(&[many.as_bytes()], 64),
            Err(SseError::TooLarge(64))
        ));
        assert_eq!(decode_all(&[b"data: ok\n\n"], 64).unwrap()[0].data, "ok");
    }

    #[test]
    fn an_unterminated_last_event_is_dropped() {
        assert!(decode_all(&[b"data: half"], 64).unwrap().is_empty());
        assert!(decode_all(&[b"data: half\n"], 64).unwrap().is_empty());
    }
}
