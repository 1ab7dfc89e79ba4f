//! WebSocket transport (PROTOCOL.md section 6; not a spec transport, so this follows the
//! TypeScript and Python SDK v1 clients): `GET /ws` with an HTTP/1.1 upgrade, subprotocol `mcp`
//! echoed when offered (connections offering none are accepted), one JSON-RPC message per text
//! frame. A binary frame closes the connection with 1003; a text frame that is not JSON-RPC gets
//! a JSON-RPC error frame; the bridge pings every `--sse-keep-alive`; shutdown sends a close
//! frame (1001). The session ends when the connection closes.

use super::connection::{self, CloseOnDrop};
use super::streamable_http::initialize::child_env;
use super::{empty, sse, Body};
use crate::app::AppState;
use crate::error::HttpError;
use crate::jsonrpc::{self, Message};
use crate::session::{SessionKey, Transport};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::WebSocketStream;

/// Longest a write to the client may block before the connection is closed as a slow consumer.
const SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Bytes read from a WebSocket connection at a time.
const WS_READ_BUFFER: usize = 8 * 1024;

/// The subprotocol MCP WebSocket clients offer.
const SUBPROTOCOL: &str = "mcp";

/// Upgrades `GET /ws` to a WebSocket session. Errors: 405 for other methods, 400 for a request
/// that is not a WebSocket handshake (version 13), 503 at the session limit or while shutting
/// down.
pub fn upgrade(mut req: Request<Incoming>, state: &Arc<AppState>) -> Response<Body> {
    if req.method() != Method::GET {
        return HttpError::method_not_allowed("GET").into_response();
    }
    let key = match handshake_key(req.headers()) {
        Ok(key) => key,
        Err(e) => return e.into_response(),
    };
    let session = match connection::open(state, Transport::WebSocket) {
        Ok(session) => session,
        Err(e) => return e.into_response(),
    };
    let offered_mcp = offers_mcp(req.headers());
    let env = child_env(&state.config.session_env, req.headers());
    let (_, rx) = session.attach_stream();
    let on_upgrade = hyper::upgrade::on(&mut req);
    let (state2, session_key) = (state.clone(), session.key);
    state.tracker.spawn(async move {
        let _close = CloseOnDrop::new(state2.clone(), session_key);
        match on_upgrade.await {
            Ok(upgraded) => {
                // tungstenite fills its whole read buffer on every read; its 128 KiB default
                // costs that much resident memory per connection. Larger messages still arrive
                // in several reads.
                let config = WebSocketConfig::default()
                    .max_message_size(Some(state2.config.max_body_bytes))
                    .read_buffer_size(WS_READ_BUFFER);
                let ws = WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    Some(config),
                )
                .await;
                serve(ws, rx, &state2, session_key, env).await;
            }
            Err(e) => tracing::debug!(error = %e, "WebSocket upgrade failed"),
        }
    });
    let mut resp = Response::new(empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(
        header::SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&key).expect("base64 is ASCII"),
    );
    if offered_mcp {
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(SUBPROTOCOL),
        );
    }
    resp
}

/// The `Sec-WebSocket-Accept` value for a valid version-13 handshake, else a 400.
fn handshake_key(headers: &HeaderMap) -> Result<String, HttpError> {
    let has = |name: header::HeaderName, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    };
    let version_ok = headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_some_and(|v| v == "13");
    match headers.get(header::SEC_WEBSOCKET_KEY) {
        Some(key)
            if has(header::UPGRADE, "websocket")
                && has(header::CONNECTION, "upgrade")
                && version_ok =>
        {
            Ok(derive_accept_key(key.as_bytes()))
        }
        _ => Err(HttpError::bad_request(
            jsonrpc::INVALID_REQUEST,
            "Bad Request: this endpoint speaks WebSocket (version 13); send an upgrade request",
        )),
    }
}

fn offers_mcp(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|p| p.trim() == SUBPROTOCOL))
}

type Ws = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// Runs one WebSocket session until either side closes it.
async fn serve(
    mut ws: Ws,
    mut outbox: mpsc::Receiver<Bytes>,
    state: &Arc<AppState>,
    key: SessionKey,
    env: Vec<(String, String)>,
) {
    let period = state.config.sse_keep_alive;
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    let close = loop {
        tokio::select! {
            biased;
            _ = state.closing.cancelled() => break Some((CloseCode::Away, "mcp-bridge is shutting down")),
            out = outbox.recv() => match out {
                Some(event) => {
                    let text = String::from_utf8_lossy(&sse::message_payload(&event)).into_owned();
                    // A client that stops reading must not hold this loop (and shutdown) hostage.
                    match tokio::time::timeout(SEND_TIMEOUT, ws.send(Frame::text(text))).await {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => break None,
                        Err(_) => {
                            state.metrics.sessions.slow_consumers.inc();
                            break Some((CloseCode::Policy, "the client did not keep up"));
                        }
                    }
                }
                None => break Some((CloseCode::Policy, "session ended or the client did not keep up")),
            },
            frame = ws.next() => match frame {
                Some(Ok(Frame::Text(text))) => on_text(state, key, text.as_bytes(), &env, &mut ws).await,
                Some(Ok(Frame::Binary(_))) => break Some((CloseCode::Unsupported, "binary frames are not supported; send JSON-RPC as text")),
                Some(Ok(Frame::Close(_))) | None | Some(Err(_)) => break None,
                Some(Ok(_)) => {} // ping/pong: tungstenite answers pings itself
            },
            _ = ping.tick() => {
                if ws.send(Frame::Ping(Bytes::new())).await.is_err() {
                    break None;
                }
            }
        }
    };
    if let Some((code, reason)) = close {
        let _ = ws
            .close(Some(CloseFrame {
                code,
                reason: reason.into(),
            }))
            .await;
    }
}

async fn on_text(
    state: &Arc<AppState>,
    key: SessionKey,
    text: &[u8],
    env: &[(String, String)],
    ws: &mut Ws,
) {
    state
        .metrics
        .router
        .message(crate::router::Direction::FromClient, text.len());
    match Message::parse(text) {
        Ok(msg) => connection::on_message(state, key, msg, env.to_vec()),
        Err(e) => {
            let body = jsonrpc::error_response(None, e.code(), &e.to_string());
            let _ = ws
                .send(Frame::text(String::from_utf8_lossy(&body).into_owned()))
                .await;
        }
    }
}
