//! The stdio line codec on arbitrary bytes in arbitrary chunks: never panics, and every line it
//! yields is within the limit and free of `\n`.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use mcp_bridge::jsonrpc::codec::{Frame, LineCodec};
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    // The first byte picks the limit and the chunk size.
    let max_len = usize::from(first % 64);
    let chunk = usize::from(first / 64) * 7 + 1;
    let mut codec = LineCodec::new(max_len);
    let mut buf = BytesMut::new();
    let check = |frame: Frame| {
        if let Frame::Line(line) = frame {
            assert!(line.len() <= max_len);
            assert!(!line.contains(&b'\n'));
        }
    };
    for piece in rest.chunks(chunk) {
        buf.extend_from_slice(piece);
        while let Some(frame) = codec.decode(&mut buf).unwrap() {
            check(frame);
        }
    }
    while let Some(frame) = codec.decode_eof(&mut buf).unwrap() {
        check(frame);
    }
});
