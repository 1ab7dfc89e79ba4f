//! Child stderr pump: every line becomes a log event under target `child::stderr`
//! (PROTOCOL.md section 1.1: stderr is logging, never an error signal).

use crate::jsonrpc::codec::{Frame, LineCodec};
use futures_util::StreamExt;
use tokio::process::ChildStderr;
use tokio_util::codec::FramedRead;

/// Longest stderr line logged whole, in bytes; longer lines are reported as skipped.
const MAX_STDERR_LINE: usize = 64 * 1024;

/// Drains `stderr` until EOF, logging each line (invalid UTF-8 replaced) with the child's pid.
pub async fn pump(stderr: ChildStderr, pid: u32) {
    let mut lines = FramedRead::new(stderr, LineCodec::new(MAX_STDERR_LINE));
    while let Some(frame) = lines.next().await {
        match frame {
            Ok(Frame::Line(line)) => {
                let text = String::from_utf8_lossy(&line);
                tracing::info!(target: "child::stderr", { child.pid = pid }, "{text}");
            }
            Ok(Frame::TooLong(max)) => {
                tracing::info!(target: "child::stderr", { child.pid = pid, max_bytes = max }, "over-long stderr line skipped");
            }
            Err(e) => {
                tracing::debug!(child.pid = pid, error = %e, "reading child stderr failed");
                break;
            }
        }
    }
}
