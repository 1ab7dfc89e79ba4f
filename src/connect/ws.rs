//! WebSocket client side (not a spec transport; PROTOCOL.md section 6 describes the de-facto
//! one): subprotocol `mcp`, one JSON-RPC message per text frame, the user's headers on the
//! handshake. A binary frame is a protocol error; close ends the connection.

use super::channel::{Connection, Incoming, Outgoing, Pending, OUTBOX};
use super::http::Failure;
use super::Context;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message as Frame};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The receiving half of the socket.
pub struct Receiver {
    stream: SplitStream<Socket>,
}

impl Receiver {
    /// The next text frame's payload, or `None` when the socket closed. Cancel safe.
    pub async fn next(&mut self) -> Result<Option<Vec<u8>>, Failure> {
        while let Some(frame) = self.stream.next().await {
            match frame {
                Ok(Frame::Text(text)) => return Ok(Some(text.as_bytes().to_vec())),
                Ok(Frame::Binary(_)) => {
                    return Err(Failure::Protocol("the remote sent a binary frame".into()))
                }
                Ok(Frame::Close(_)) => return Ok(None),
                Ok(_) => continue,
                Err(e) => return Err(Failure::Unreachable(e.to_string())),
            }
        }
        Ok(None)
    }
}

/// Opens the WebSocket, asking for subprotocol `mcp`. Errors: the handshake got an HTTP answer
/// other than 101 ([`Failure::Status`]); the remote did not select `mcp` (tungstenite refuses a
/// handshake that leaves out a requested subprotocol) or broke the handshake otherwise
/// ([`Failure::Protocol`]); no connection ([`Failure::Unreachable`]).
pub(super) async fn open(cx: &Context, pending: Pending) -> Result<Connection, Failure> {
    let mut request = cx
        .config
        .url
        .as_str()
        .into_client_request()
        .map_err(|e| Failure::Protocol(format!("bad WebSocket URL: {e}")))?;
    request.headers_mut().extend(cx.credentials.headers());
    request.headers_mut().insert(
        ::http::header::SEC_WEBSOCKET_PROTOCOL,
        ::http::HeaderValue::from_static("mcp"),
    );
    let max = cx.config.max_message_bytes;
    let config = WebSocketConfig::default()
        .max_message_size(Some(max))
        .max_frame_size(Some(max));
    let connect = tokio_tungstenite::connect_async_with_config(request, Some(config), false);
    let (socket, response) = tokio::time::timeout(cx.config.timeout, connect)
        .await
        .map_err(|_| Failure::Unreachable("the WebSocket handshake timed out".into()))?
        .map_err(handshake_failure)?;
    let chosen = response
        .headers()
        .get(::http::header::SEC_WEBSOCKET_PROTOCOL);
    if chosen.is_some_and(|p| p != "mcp") {
        return Err(Failure::Protocol(format!(
            "the remote chose subprotocol {chosen:?}, not mcp"
        )));
    }
    let (sink, stream) = socket.split();
    let (outbox, rx) = mpsc::channel(OUTBOX);
    cx.tracker.spawn(send_each(cx.clone(), sink, rx, pending));
    Ok(Connection {
        outbox,
        incoming: Incoming::Ws(Receiver { stream }),
    })
}

fn handshake_failure(e: tungstenite::Error) -> Failure {
    match e {
        tungstenite::Error::Http(response) => {
            let header = |name| {
                response
                    .headers()
                    .get(name)
                    .and_then(|v: &::http::HeaderValue| v.to_str().ok())
                    .map(str::to_string)
            };
            let body = response
                .body()
                .as_deref()
                .map(|b| {
                    String::from_utf8_lossy(b)
                        .trim()
                        .chars()
                        .take(300)
                        .collect()
                })
                .unwrap_or_default();
            Failure::Status {
                status: response.status(),
                body,
                www_authenticate: header(::http::header::WWW_AUTHENTICATE),
            }
        }
        tungstenite::Error::Protocol(p) => {
            Failure::Protocol(format!("the WebSocket handshake failed: {p}"))
        }
        other => Failure::Unreachable(other.to_string()),
    }
}

/// Writes the queued messages as text frames; closes the socket at shutdown.
async fn send_each(
    cx: Context,
    mut sink: SplitSink<Socket, Frame>,
    mut rx: mpsc::Receiver<Outgoing>,
    pending: Pending,
) {
    loop {
        let message = tokio::select! {
            m = rx.recv() => match m { Some(m) => m, None => return },
            _ = cx.stop.cancelled() => {
                let _ = sink.send(Frame::Close(None)).await;
                return;
            }
        };
        let text = String::from_utf8_lossy(&message.raw).into_owned();
        let result = sink.send(Frame::text(text)).await.map_err(|e| {
            tracing::warn!(error = %e, "sending a WebSocket frame failed");
            Failure::Unreachable(format!("sending to the remote failed: {e}"))
        });
        super::channel::settle(&cx, &pending, message.id, message.ack, result).await;
    }
}
