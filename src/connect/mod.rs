//! `mcp-bridge connect URL`: a local stdio MCP server that forwards every message to a remote
//! MCP server, for clients that only launch local processes (Claude Desktop, IDEs, agents).
//!
//! Owns: the process's main loop. Lines from stdin are validated and handed to the remote transport;
//! messages from the remote go to stdout through the single writer in [`stdio`]. The first
//! `initialize` picks the transport (PROTOCOL.md section 2.8) and fails the process when the
//! remote is unreachable (exit 69), refuses the credentials (77) or does not speak MCP (76);
//! later failures become JSON-RPC errors for the request concerned and never end the process.
//! stdin closing (or SIGTERM/SIGINT) ends the session: DELETE for Streamable HTTP, bounded by
//! [`CLOSE_BUDGET`], then exit 0.
//!
//! Invariants: stdout carries JSON-RPC only; logs go to stderr; request ids pass through
//! unchanged (one local client, so there is nothing to rewrite).

pub mod channel;
pub mod cli;
pub mod http;
pub mod legacy;
pub mod restore;
pub mod sse;
pub mod stdio;
pub mod streamable;
pub mod ws;

pub use cli::{ConnectCli, ConnectConfig, RemoteTransport};

use crate::jsonrpc::codec::{Frame, LineCodec};
use crate::jsonrpc::{self, Kind, Message, RequestId};
use futures_util::StreamExt;
use std::time::Duration;
use stdio::Stdout;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Time allowed for ending the remote session (DELETE) and writing out stdout at exit. Below the
/// 2 s the official SDKs wait after closing a stdio server's stdin before they kill it.
pub const CLOSE_BUDGET: Duration = Duration::from_millis(1500);
/// The part of [`CLOSE_BUDGET`] kept for the tasks to end and stdout to be written out; the
/// DELETE gets the rest.
pub(crate) const EXIT_WAIT: Duration = Duration::from_millis(300);

/// JSON-RPC code of the errors `connect` answers for a request the remote could not serve (the
/// implementation-defined server-error range of JSON-RPC 2.0 section 5.1).
pub const REMOTE_ERROR: i64 = jsonrpc::UPSTREAM_UNAVAILABLE;

/// Why `connect` stopped with an error; each kind has its own exit code.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConnectError {
    /// A bad flag or file (exit 64, EX_USAGE).
    #[error("{0}")]
    Usage(String),
    /// The remote could not be reached or failed (exit 69, EX_UNAVAILABLE).
    #[error("{0}")]
    Unreachable(String),
    /// The remote answered, but not as an MCP server (exit 76, EX_PROTOCOL).
    #[error("{0}")]
    Protocol(String),
    /// The remote refused the credentials: 401 or 403 (exit 77, EX_NOPERM).
    #[error("{0}")]
    Auth(String),
    /// A local failure such as the runtime or TLS setup (exit 1).
    #[error("{0}")]
    Runtime(String),
}

impl ConnectError {
    /// The process exit code for this error (sysexits.h values, 1 for runtime failures).
    pub fn exit_code(&self) -> u8 {
        match self {
            ConnectError::Usage(_) => 64,
            ConnectError::Unreachable(_) => 69,
            ConnectError::Protocol(_) => 76,
            ConnectError::Auth(_) => 77,
            ConnectError::Runtime(_) => 1,
        }
    }
}

/// The connected remote, by transport.
enum Remote {
    /// Streamable HTTP: one POST per message.
    Streamable(streamable::Client),
    /// HTTP+SSE or WebSocket: one long-lived connection, re-made when it drops.
    Channel(channel::Handle),
}

/// Process-wide things every part of `connect` shares.
#[derive(Clone, Debug)]
pub struct Context {
    /// The validated flags.
    pub config: ConnectConfig,
    /// The stdout writer.
    pub out: Stdout,
    /// Cancelled at shutdown: stdin closed, a signal, or stdout closed.
    pub stop: CancellationToken,
    /// Owns every task `connect` starts.
    pub tracker: TaskTracker,
    /// What the local client set up in the remote session, repeated in a replacement session.
    pub setup: restore::SessionSetup,
    /// The headers every request carries, with the token re-read after a refusal.
    pub credentials: http::Credentials,
}

/// Runs `connect` until stdin closes or a signal arrives. Returns `Ok` after a clean end (the
/// remote session was ended when there was one). Errors: see [`ConnectError`]; the first
/// `initialize` failing is the only remote failure that ends the process.
pub async fn run(config: ConnectConfig) -> Result<(), ConnectError> {
    let stop = CancellationToken::new();
    let tracker = TaskTracker::new();
    let out = Stdout::spawn(tokio::io::stdout(), &tracker, stop.clone());
    let credentials = http::Credentials::new(&config);
    let cx = Context {
        config,
        out,
        stop: stop.clone(),
        tracker: tracker.clone(),
        setup: restore::SessionSetup::default(),
        credentials,
    };
    tracker.spawn(stop_on_signal(stop.clone()));
    let result = read_stdin(&cx).await;
    stop.cancel();
    let Context { out, .. } = cx;
    drop(out);
    tracker.close();
    if tokio::time::timeout(EXIT_WAIT, tracker.wait())
        .await
        .is_err()
    {
        tracing::debug!("tasks still running at exit");
    }
    result
}

/// Cancels `stop` on SIGTERM or SIGINT (or when `stop` is cancelled otherwise).
async fn stop_on_signal(stop: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM; ending the session"),
        _ = int.recv() => tracing::info!("SIGINT; ending the session"),
        _ = stop.cancelled() => return,
    }
    stop.cancel();
}

/// The main loop: one stdin line at a time, until EOF or `stop`. Handling a message is raced
/// against `stop`, which stdin's end also cancels, so neither a hung remote nor a pending
/// `initialize` can delay the end of the session.
async fn read_stdin(cx: &Context) -> Result<(), ConnectError> {
    let (lines_tx, mut lines) = tokio::sync::mpsc::channel(STDIN_QUEUE);
    cx.tracker.spawn(read_lines(cx.clone(), lines_tx));
    let mut remote: Option<Remote> = None;
    let result = 'lines: loop {
        let frame = tokio::select! {
            frame = lines.recv() => frame,
            _ = cx.stop.cancelled() => break Ok(()),
        };
        let line = match frame {
            None => break Ok(()),
            Some(Frame::TooLong(limit)) => {
                let text = format!(
                    "a message on stdin is longer than {limit} bytes and was dropped \
                     (raise --max-message-bytes)"
                );
                reply_error(cx, None, jsonrpc::INVALID_REQUEST, &text).await;
                continue;
            }
            Some(Frame::Line(line)) => line,
        };
        for (message, raw) in parse_line(cx, &line).await {
            let handled = tokio::select! {
                handled = handle_message(cx, &mut remote, message, raw) => handled,
                _ = cx.stop.cancelled() => break 'lines Ok(()),
            };
            if let Err(e) = handled {
                break 'lines Err(e);
            }
        }
    };
    // Stop the GET stream and abandon requests first: nobody reads their answers any more.
    cx.stop.cancel();
    if let Some(remote) = remote {
        remote.close().await;
    }
    result
}

/// Lines from stdin that may wait for the main loop.
const STDIN_QUEUE: usize = 64;

/// Reads stdin into `lines`; at its end (or a read error) cancels the process's stop token.
async fn read_lines(cx: Context, lines: tokio::sync::mpsc::Sender<Frame>) {
    let max = cx.config.max_message_bytes;
    let mut stdin = FramedRead::new(tokio::io::stdin(), LineCodec::new(max));
    loop {
        let frame = tokio::select! {
            frame = stdin.next() => frame,
            _ = cx.stop.cancelled() => return,
        };
        let frame = match frame {
            Some(Ok(frame)) => frame,
            Some(Err(e)) => {
                tracing::warn!(error = %e, "reading stdin failed; ending the session");
                break;
            }
            None => {
                tracing::debug!("stdin closed; ending the session");
                break;
            }
        };
        tokio::select! {
            sent = lines.send(frame) => if sent.is_err() { return },
            _ = cx.stop.cancelled() => return,
        }
    }
    cx.stop.cancel();
}

/// Parses one stdin line into messages with their compact JSON text: one, or the elements of a
/// batch array (MCP 2025-03-26). Invalid ones are answered on stdout with -32700/-32600 and
/// left out; blank lines give nothing.
async fn parse_line(cx: &Context, line: &[u8]) -> Vec<(Message, Vec<u8>)> {
    let text = line.trim_ascii();
    if text.is_empty() {
        return Vec::new();
    }
    let items: Vec<Vec<u8>> = match text.first() {
        Some(b'[') => match serde_json::from_slice::<Vec<Box<serde_json::value::RawValue>>>(text) {
            Ok(items) => items.iter().map(|m| m.get().as_bytes().to_vec()).collect(),
            Err(e) => {
                let text = format!("parse error: {e}");
                reply_error(cx, None, jsonrpc::PARSE_ERROR, &text).await;
                return Vec::new();
            }
        },
        _ => vec![text.to_vec()],
    };
    let mut out = Vec::with_capacity(items.len());
    for raw in items {
        match Message::parse(&raw) {
            Ok(message) => out.push((message, raw)),
            Err(e) => reply_error(cx, None, e.code(), &e.to_string()).await,
        }
    }
    out
}

/// Routes one message from the local client. The first `initialize` starts the remote;
/// before that, requests get an error and notifications are dropped. Errors: only a failed
/// start, which ends the process.
async fn handle_message(
    cx: &Context,
    remote: &mut Option<Remote>,
    message: Message,
    raw: Vec<u8>,
) -> Result<(), ConnectError> {
    let is_request = message.kind() == Ok(Kind::Request);
    let initialize = is_request && message.method() == "initialize";
    if let Some(id) = message
        .request_id()
        .filter(|id| is_request && is_reserved(id))
    {
        let text = format!("mcp-bridge connect: request ids starting with {RESERVED_ID_PREFIX:?} are reserved for connect's own requests");
        reply_error(cx, Some(id), jsonrpc::INVALID_REQUEST, &text).await;
        return Ok(());
    }
    if remote.is_some() {
        cx.setup.observe(&message, &raw);
    }
    match remote {
        Some(Remote::Streamable(client)) if initialize => {
            client.initialize(message, raw).await;
            Ok(())
        }
        Some(Remote::Streamable(client)) => {
            client.send(message, raw).await;
            Ok(())
        }
        Some(Remote::Channel(handle)) => {
            handle.send(message, raw).await;
            Ok(())
        }
        None if initialize => {
            let id = message.request_id().cloned();
            match start(cx, message, raw).await {
                Ok(started) => {
                    *remote = Some(started);
                    Ok(())
                }
                Err(e) => {
                    // `main` prints the reason once on stderr as the process ends.
                    let text = format!("mcp-bridge connect: {e}");
                    reply_error(cx, id.as_ref(), REMOTE_ERROR, &text).await;
                    Err(e)
                }
            }
        }
        None if is_request => {
            let text = "mcp-bridge connect: send initialize first; there is no session yet";
            reply_error(cx, message.request_id(), jsonrpc::INVALID_REQUEST, text).await;
            Ok(())
        }
        None => {
            tracing::debug!(
                rpc.method = message.method(),
                "dropped a message sent before initialize"
            );
            Ok(())
        }
    }
}

/// Connects with the configured transport and sends the first `initialize`; for `auto`, falls
/// back from Streamable HTTP to HTTP+SSE when the POST gets 400, 404 or 405.
async fn start(cx: &Context, message: Message, raw: Vec<u8>) -> Result<Remote, ConnectError> {
    let deadline = cx.config.timeout;
    let connect = async {
        match cx.config.transport {
            RemoteTransport::Ws => channel::Handle::start(cx, channel::Kind::Ws, message, raw)
                .await
                .map(Remote::Channel),
            RemoteTransport::Sse => channel::Handle::start(cx, channel::Kind::Sse, message, raw)
                .await
                .map(Remote::Channel),
            RemoteTransport::StreamableHttp => streamable::Client::start(cx, message, raw)
                .await
                .map(Remote::Streamable)
                .map_err(Into::into),
            RemoteTransport::Auto => {
                match streamable::Client::start(cx, message, raw.clone()).await {
                    Err(streamable::StartError::Fallback(why)) => {
                        tracing::info!(reason = %why, "no Streamable HTTP here; trying HTTP+SSE");
                        let message = Message::parse(&raw).expect("parsed before");
                        channel::Handle::start(cx, channel::Kind::Sse, message, raw)
                            .await
                            .map(Remote::Channel)
                            .map_err(|e| fallback_failed(&why, e))
                    }
                    other => other.map(Remote::Streamable).map_err(Into::into),
                }
            }
        }
    };
    match tokio::time::timeout(deadline, connect).await {
        Ok(result) => result,
        Err(_) => Err(ConnectError::Unreachable(format!(
            "{}: no answer to initialize within {} (--timeout)",
            cx.config.url,
            humantime::format_duration(deadline)
        ))),
    }
}

/// The error when neither transport worked: both reasons, kept at the HTTP+SSE error's kind
/// unless that is a plain protocol mismatch.
fn fallback_failed(streamable: &str, sse: ConnectError) -> ConnectError {
    let text = format!("neither Streamable HTTP ({streamable}) nor HTTP+SSE ({sse}) works at this URL; is it an MCP endpoint?");
    match sse {
        ConnectError::Auth(_) => ConnectError::Auth(text),
        ConnectError::Unreachable(_) => ConnectError::Unreachable(text),
        _ => ConnectError::Protocol(text),
    }
}

/// The `requestId` a `notifications/cancelled` names, if `message` is one.
pub(crate) fn cancelled_request(message: &Message) -> Option<RequestId> {
    if message.method() != "notifications/cancelled" {
        return None;
    }
    #[derive(serde::Deserialize)]
    struct Params {
        #[serde(rename = "requestId")]
        request_id: RequestId,
    }
    let params = message.params.as_ref()?;
    serde_json::from_str::<Params>(params.get())
        .ok()
        .map(|p| p.request_id)
}

/// Writes a JSON-RPC error response (or an id-less error) to stdout.
pub(crate) async fn reply_error(cx: &Context, id: Option<&RequestId>, code: i64, text: &str) {
    cx.out.send(jsonrpc::error_response(id, code, text)).await;
}

/// A message from the remote, checked and made ready for stdout.
pub(crate) struct Inbound {
    /// Compact JSON on one line.
    pub bytes: Vec<u8>,
    /// The id when the message is a response.
    pub response_to: Option<RequestId>,
}

impl Inbound {
    /// Checks that `data` is one JSON-RPC message and puts it on one line. Returns `None`
    /// (logged) for anything else, which is never forwarded.
    pub fn parse(data: impl Into<Vec<u8>>) -> Option<Inbound> {
        Inbound::try_parse(data.into())
            .map_err(|(_, e)| {
                tracing::warn!(error = %e, "dropped a message from the remote that is not JSON-RPC")
            })
            .ok()
    }

    /// Like [`Inbound::parse`], but hands back the bytes that are not JSON-RPC, with the
    /// reason and without logging, for a caller that can make something of them.
    pub fn try_parse(mut bytes: Vec<u8>) -> Result<Inbound, (Vec<u8>, jsonrpc::InvalidMessage)> {
        match Message::parse(&bytes) {
            Ok(m) => {
                jsonrpc::flatten_line_breaks(&mut bytes);
                let response_to = match m.kind() {
                    Ok(Kind::Response) => m.request_id().cloned(),
                    _ => None,
                };
                Ok(Inbound { bytes, response_to })
            }
            Err(e) => Err((bytes, e)),
        }
    }

    /// Sends the message to stdout, unless it answers one of connect's own requests (a
    /// reserved id, see [`is_reserved`]): such an answer arriving late is dropped.
    pub async fn forward(self, out: &Stdout) {
        match &self.response_to {
            Some(id) if is_reserved(id) => {
                tracing::debug!(rpc.id = %id, "dropped a late answer to connect's own request")
            }
            _ => {
                out.send(self.bytes).await;
            }
        }
    }

    /// Forwards the message (see [`Inbound::forward`]) unless it is the answer to `want` and
    /// `forward` is false; returns its JSON when it is that answer.
    pub async fn deliver(self, out: &Stdout, want: &RequestId, forward: bool) -> Option<Vec<u8>> {
        if self.response_to.as_ref() != Some(want) {
            self.forward(out).await;
            return None;
        }
        if forward {
            out.send(self.bytes.clone()).await;
        }
        Some(self.bytes)
    }
}

/// True when `answer` (a JSON-RPC response) is a success: it has a `result`.
pub(crate) fn is_success(answer: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(answer).is_ok_and(|v| v.get("result").is_some())
}

/// `notifications/initialized`, sent after a repeated `initialize`.
pub(crate) const INITIALIZED: &[u8] = br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;

/// Prefix of the ids of connect's own requests (a repeated `initialize`, repeated setup):
/// their answers never reach the local client, whose requests may not use it.
pub(crate) const RESERVED_ID_PREFIX: &str = "mcp-bridge-connect-";

/// True for an id of connect's own requests (see [`RESERVED_ID_PREFIX`]).
pub(crate) fn is_reserved(id: &RequestId) -> bool {
    matches!(id, RequestId::String(s) if s.starts_with(RESERVED_ID_PREFIX))
}

/// The reserved request id of the `n`th repeated `initialize`; its answer is never forwarded.
pub(crate) fn reinit_id(n: u64) -> RequestId {
    RequestId::String(format!("{RESERVED_ID_PREFIX}reinit-{n}"))
}

impl Remote {
    /// Ends the remote session within [`CLOSE_BUDGET`].
    async fn close(self) {
        match self {
            Remote::Streamable(client) => client.close().await,
            Remote::Channel(handle) => handle.close().await,
        }
    }
}

/// Longest wait between reconnection attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Delay before reconnection attempt `failures` (1-based): `1 s * 1.5^(failures-1)`, at most
/// [`MAX_BACKOFF`], the schedule of the TypeScript SDK client.
pub(crate) fn backoff(failures: u32) -> Duration {
    let secs = 1.5f64.powi(failures.saturating_sub(1).min(20) as i32);
    Duration::from_secs_f64(secs).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_by_half_and_stops_at_thirty_seconds() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_millis(1500));
        assert_eq!(backoff(3), Duration::from_millis(2250));
        assert_eq!(backoff(50), MAX_BACKOFF);
    }

    #[test]
    fn inbound_messages_are_checked_and_put_on_one_line() {
        let m =
            Inbound::parse(b"{\"jsonrpc\":\"2.0\",\n\"id\":\"a\",\"result\":{}}".to_vec()).unwrap();
        assert!(!m.bytes.contains(&b'\n'));
        assert_eq!(m.response_to, Some(RequestId::String("a".into())));
        assert!(Inbound::parse(b"not json".to_vec()).is_none());
        assert!(Inbound::parse(b"{\"jsonrpc\":\"1.0\",\"method\":\"x\"}".to_vec()).is_none());
        let n = Inbound::parse(b"{\"jsonrpc\":\"2.0\",\"method\":\"x\"}".to_vec()).unwrap();
        assert_eq!(n.response_to, None);
    }

    #[test]
    fn exit_codes_follow_sysexits() {
        let codes: Vec<u8> = [
            ConnectError::Usage(String::new()),
            ConnectError::Unreachable(String::new()),
            ConnectError::Protocol(String::new()),
            ConnectError::Auth(String::new()),
            ConnectError::Runtime(String::new()),
        ]
        .iter()
        .map(ConnectError::exit_code)
        .collect();
        assert_eq!(codes, [64, 69, 76, 77, 1]);
    }
}
