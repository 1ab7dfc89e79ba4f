//! Newline-delimited framing of the stdio transport (PROTOCOL.md sections 1.1 and 1.2).
//!
//! Owns: splitting the child's stdout byte stream into lines with a maximum length. Lines are
//! kept as bytes until a whole line is present, so a multibyte UTF-8 character split across two
//! reads is never corrupted. A trailing `\r` is stripped. An over-long line is reported once as
//! [`Frame::TooLong`] and its remaining bytes are discarded up to the next `\n`; decoding never
//! fails, so one bad line can never end the stream.

use bytes::{Buf, Bytes, BytesMut};
use tokio_util::codec::Decoder;

/// One decoded unit of the child's stdout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A complete line without its `\n` (and without a trailing `\r`). May be empty.
    Line(Bytes),
    /// A line longer than the limit; carries the limit in bytes. Its bytes are skipped.
    TooLong(usize),
}

/// [`Decoder`] of newline-delimited lines with a maximum line length in bytes.
#[derive(Debug)]
pub struct LineCodec {
    max_len: usize,
    /// True while skipping the rest of an over-long line.
    discarding: bool,
    /// How far into the buffer we already looked for `\n` (avoids rescanning on partial reads).
    scanned: usize,
}

impl LineCodec {
    /// A codec that accepts lines of at most `max_len` bytes (excluding the `\n`).
    pub fn new(max_len: usize) -> Self {
        LineCodec {
            max_len,
            discarding: false,
            scanned: 0,
        }
    }
}

impl Decoder for LineCodec {
    type Item = Frame;
    type Error = std::io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, std::io::Error> {
        loop {
            let newline = memchr::memchr(b'\n', &buf[self.scanned..]);
            match (self.discarding, newline) {
                (true, Some(pos)) => {
                    buf.advance(self.scanned + pos + 1);
                    self.scanned = 0;
                    self.discarding = false;
                }
                (true, None) => {
                    buf.clear();
                    self.scanned = 0;
                    return Ok(None);
                }
                (false, Some(pos)) => {
                    let end = self.scanned + pos;
                    self.scanned = 0;
                    if end > self.max_len {
                        buf.advance(end + 1);
                        return Ok(Some(Frame::TooLong(self.max_len)));
                    }
                    let mut line = buf.split_to(end + 1).freeze();
                    line.truncate(end);
                    if line.last() == Some(&b'\r') {
                        line.truncate(end - 1);
                    }
                    return Ok(Some(Frame::Line(line)));
                }
                (false, None) => {
                    if buf.len() > self.max_len {
                        self.discarding = true;
                        buf.clear();
                        self.scanned = 0;
                        return Ok(Some(Frame::TooLong(self.max_len)));
                    }
                    self.scanned = buf.len();
                    return Ok(None);
                }
            }
        }
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, std::io::Error> {
        if let Some(frame) = self.decode(buf)? {
            return Ok(Some(frame));
        }
        if buf.is_empty() || self.discarding {
            buf.clear();
            return Ok(None);
        }
        // A final line without `\n`: deliver it rather than lose a message.
        self.scanned = 0;
        let mut line = buf.split().freeze();
        if line.last() == Some(&b'\r') {
            line.truncate(line.len() - 1);
        }
        Ok(Some(Frame::Line(line)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(codec: &mut LineCodec, chunks: &[&[u8]]) -> Vec<Frame> {
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for chunk in chunks {
            buf.extend_from_slice(chunk);
            while let Some(f) = codec.decode(&mut buf).unwrap() {
                out.push(f);
            }
        }
        while let Some(f) = codec.decode_eof(&mut buf).unwrap() {
            out.push(f);
        }
        out
    }

    fn line(s: &str) -> Frame {
        Frame::Line(Bytes::copy_from_slice(s.as_bytes()))
    }

    #[test]
    fn splits_lines_and_strips_carriage_returns() {
        let frames = decode_all(&mut LineCodec::new(100), &[b"a\r\nbb\n\nccc"]);
        assert_eq!(frames, vec![line("a"), line("bb"), line(""), line("ccc")]);
    }

    #[test]
    fn never_splits_a_multibyte_character_across_reads() {
        let text = "{\"x\":\"h\u{e9}llo \u{1F600}\"}\n";
        let bytes = text.as_bytes();
        for cut in 1..bytes.len() {
            let frames = decode_all(&mut LineCodec::new(100), &[&bytes[..cut], &bytes[cut..]]);
            assert_eq!(frames, vec![line(text.trim_end())], "cut at {cut}");
        }
    }

    #[test]
    fn skips_over_long_lines_and_recovers() {
        let long = vec![b'x'; 50];
        let frames = decode_all(
            &mut LineCodec::new(10),
            &[b"ok\n", &long[..20], &long[20..], b"\nnext\n"],
        );
        assert_eq!(frames, vec![line("ok"), Frame::TooLong(10), line("next")]);
        let frames = decode_all(&mut LineCodec::new(10), &[&long, b"\nafter\n"]);
        assert_eq!(frames, vec![Frame::TooLong(10), line("after")]);
    }

    #[test]
    fn a_line_of_exactly_the_limit_passes() {
        let frames = decode_all(&mut LineCodec::new(3), &[b"abc\nabcd\n"]);
        assert_eq!(frames, vec![line("abc"), Frame::TooLong(3)]);
    }
}
