//! The local side of `connect`: newline-delimited JSON-RPC on stdin and stdout (PROTOCOL.md
//! section 1.1).
//!
//! Owns: the one task that writes stdout. Invariant: stdout carries only whole JSON-RPC
//! messages, one per line, each written by that task (logs go to stderr), so concurrent
//! producers can never interleave bytes. The queue is bounded ([`STDOUT_QUEUE`]); a slow reader
//! makes producers wait, and a closed stdout cancels the whole process's token.

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Messages that may wait for the stdout writer before producers wait too.
pub const STDOUT_QUEUE: usize = 256;

/// Cloneable handle to the stdout writer task.
#[derive(Clone, Debug)]
pub struct Stdout {
    /// Whole messages without their `\n`, in the order they are to be written.
    tx: mpsc::Sender<Vec<u8>>,
}

impl Stdout {
    /// Starts the writer on `sink` (stdout in production) under `tracker`. When writing fails
    /// (the local client closed its end) `on_closed` is cancelled. The task ends once every
    /// handle is dropped and the queue is written out.
    pub fn spawn<W>(sink: W, tracker: &TaskTracker, on_closed: CancellationToken) -> Stdout
    where
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(STDOUT_QUEUE);
        tracker.spawn(write_lines(sink, rx, on_closed));
        Stdout { tx }
    }

    /// Queues one message (JSON text without line breaks). Waits while the queue is full.
    /// Returns false when the writer has stopped (stdout closed); the message is then dropped.
    pub async fn send(&self, message: Vec<u8>) -> bool {
        self.tx.send(message).await.is_ok()
    }
}

async fn write_lines<W: AsyncWrite + Unpin>(
    mut sink: W,
    mut rx: mpsc::Receiver<Vec<u8>>,
    on_closed: CancellationToken,
) {
    while let Some(mut line) = rx.recv().await {
        line.push(b'\n');
        let mut result = sink.write_all(&line).await;
        if result.is_ok() && rx.is_empty() {
            result = sink.flush().await;
        }
        if let Err(e) = result {
            tracing::info!(error = %e, "stdout closed; stopping");
            on_closed.cancel();
            return;
        }
    }
    let _ = sink.flush().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn concurrent_producers_write_whole_lines_in_queue_order() {
        let (sink, mut source) = tokio::io::duplex(64);
        let tracker = TaskTracker::new();
        let out = Stdout::spawn(sink, &tracker, CancellationToken::new());
        let mut producers = Vec::new();
        for p in 0..4 {
            let out = out.clone();
            producers.push(tokio::spawn(async move {
                for i in 0..50 {
                    let line = format!("{{\"p\":{p},\"i\":{i},\"pad\":\"{}\"}}", "x".repeat(40));
                    assert!(out.send(line.into_bytes()).await);
                }
            }));
        }
        let reader = tokio::spawn(async move {
            let mut text = String::new();
            source.read_to_string(&mut text).await.unwrap();
            text
        });
        for p in producers {
            p.await.unwrap();
        }
        drop(out);
        tracker.close();
        tracker.wait().await;
        let text = reader.await.unwrap();
        let mut next = [0; 4];
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect("whole JSON lines");
            let p = v["p"].as_u64().unwrap() as usize;
            assert_eq!(
                v["i"].as_u64().unwrap() as usize,
                next[p],
                "order within a producer"
            );
            next[p] += 1;
        }
        assert_eq!(next, [50; 4]);
    }

    #[tokio::test]
    async fn a_closed_stdout_cancels_the_token() {
        let (sink, source) = tokio::io::duplex(8);
        drop(source);
        let tracker = TaskTracker::new();
        let closed = CancellationToken::new();
        let out = Stdout::spawn(sink, &tracker, closed.clone());
        let _ = out.send(b"{}".to_vec()).await;
        tokio::time::timeout(std::time::Duration::from_secs(5), closed.cancelled())
            .await
            .expect("cancelled");
    }
}
