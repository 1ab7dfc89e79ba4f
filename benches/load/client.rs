//! The load generator's MCP client side: sessions over Streamable HTTP, legacy HTTP+SSE,
//! WebSocket, or straight over a child's pipes (`direct`), and one verified `tools/call echo`.
//!
//! HTTP goes through hyper's client connection API (one connection per worker, no pool), so the
//! generator itself stays cheap: it shares the machine's cores with the server it measures.

use bytes::Bytes;
use eventsource_stream::Eventsource;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// How long one request may take before it counts as an error.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Responses that arrived on a stream whose session never sent their id (misrouted), over the
/// whole run.
pub static MISROUTED: AtomicU64 = AtomicU64::new(0);

/// Source of request ids for `initialize` calls; unique across all sessions of a run, so a
/// response delivered to the wrong session is recognised as misrouted.
static INIT_IDS: AtomicU64 = AtomicU64::new(1 << 50);

/// The client transport a target is driven with.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Transport {
    /// Streamable HTTP: one POST per request, JSON or SSE response.
    Streamable,
    /// Legacy HTTP+SSE: `GET /sse`, POSTs to the announced endpoint, responses on the stream.
    Sse,
    /// WebSocket, one text frame per message (subprotocol `mcp`).
    Ws,
    /// The child's own stdin/stdout, no HTTP: the upper bound.
    Direct,
}

impl Transport {
    /// Parses `streamable`, `sse`, `ws` or `direct`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "streamable" | "streamable-http" | "http" => Some(Self::Streamable),
            "sse" => Some(Self::Sse),
            "ws" | "websocket" => Some(Self::Ws),
            "direct" => Some(Self::Direct),
            _ => None,
        }
    }

    /// The short name used in tables.
    pub fn name(self) -> &'static str {
        match self {
            Self::Streamable => "streamable-http",
            Self::Sse => "sse",
            Self::Ws => "ws",
            Self::Direct => "direct",
        }
    }
}

/// Error of one call, as text for the summary.
pub type Error = String;

fn err(e: impl std::fmt::Display) -> Error {
    e.to_string()
}

/// Requests waiting for their response on a shared stream, by JSON-RPC id.
#[derive(Default)]
pub struct Pending(Mutex<HashMap<u64, oneshot::Sender<Value>>>);

impl Pending {
    fn register(&self, id: u64) -> oneshot::Receiver<Value> {
        let (tx, rx) = oneshot::channel();
        self.0.lock().unwrap().insert(id, tx);
        rx
    }

    fn forget(&self, id: u64) {
        self.0.lock().unwrap().remove(&id);
    }

    /// Hands a message read from the stream to its waiter; responses nobody here waits for are
    /// counted in [`MISROUTED`]; notifications and server requests are ignored.
    fn dispatch(&self, message: Value) {
        let is_response = message.get("result").is_some() || message.get("error").is_some();
        let Some(id) = message.get("id").and_then(Value::as_u64) else {
            return;
        };
        if !is_response {
            return;
        }
        match self.0.lock().unwrap().remove(&id) {
            Some(tx) => {
                let _ = tx.send(message);
            }
            None => {
                MISROUTED.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Aborts the task when dropped, so closing a session stops its readers and writers.
pub struct Task(JoinHandle<()>);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One open MCP session (for `direct`, the child itself).
pub enum Session {
    /// Streamable HTTP: POST target, session id (absent on stateless servers), negotiated
    /// protocol version.
    Streamable {
        uri: Uri,
        id: Option<String>,
        version: String,
    },
    /// Legacy SSE: the announced POST endpoint and the stream's reader.
    Sse {
        post: Uri,
        pending: Arc<Pending>,
        _reader: Task,
    },
    /// WebSocket or direct pipes: frames/lines go through a writer task.
    Framed {
        tx: mpsc::UnboundedSender<String>,
        pending: Arc<Pending>,
        _tasks: Vec<Task>,
    },
}

/// An HTTP/1.1 connection owned by one worker.
pub type Conn = SendRequest<Full<Bytes>>;

/// Opens a TCP connection with `TCP_NODELAY` and an HTTP/1.1 handshake.
pub async fn connect(uri: &Uri) -> Result<Conn, Error> {
    let authority = uri.authority().ok_or("URL without host")?.as_str();
    let stream = TcpStream::connect(authority).await.map_err(err)?;
    stream.set_nodelay(true).map_err(err)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(err)?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// The request target in origin form (`/path?query`), as servers expect from a client that is
/// not talking to a proxy.
fn origin_form(uri: &Uri) -> &str {
    uri.path_and_query().map_or("/", |p| p.as_str())
}

fn initialize_body(id: u64) -> String {
    json!({"jsonrpc":"2.0","id":id,"method":"initialize","params":{
        "protocolVersion":"2025-03-26","capabilities":{},
        "clientInfo":{"name":"mcp-bridge-load","version":"1"}}})
    .to_string()
}

const INITIALIZED: &str = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;

/// The body of the `n`th echo call of `worker`, with its id and the message to expect back.
pub fn echo_call(worker: usize, n: u64) -> (u64, String, String) {
    let id = (worker as u64) << 32 | n;
    let message = format!("w{worker}-{n}");
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"echo","arguments":{{"message":"{message}"}}}}}}"#
    );
    (id, message, body)
}

/// True when `response` is the echo result for `id` carrying `message`.
pub fn verify(response: &Value, id: u64, message: &str) -> bool {
    response["id"].as_u64() == Some(id)
        && response["result"]["content"][0]["text"].as_str() == Some(message)
}

impl Session {
    /// Opens a session on `url` with `transport`: the `initialize` request, then
    /// `notifications/initialized`. For `direct`, `url` is unused and `child` is the command.
    pub async fn open(transport: Transport, url: &str, child: &[String]) -> Result<Self, Error> {
        match transport {
            Transport::Streamable => Self::open_streamable(url).await,
            Transport::Sse => Self::open_sse(url).await,
            Transport::Ws => Self::open_ws(url).await,
            Transport::Direct => Self::open_direct(child).await,
        }
    }

    async fn open_streamable(url: &str) -> Result<Self, Error> {
        let uri: Uri = url.parse().map_err(err)?;
        let mut conn = connect(&uri).await?;
        let mut session = Session::Streamable {
            uri,
            id: None,
            version: "2025-03-26".into(),
        };
        let init_id = INIT_IDS.fetch_add(1, Ordering::Relaxed);
        let (status, sid, response) = session
            .post(&mut conn, initialize_body(init_id), Some(init_id))
            .await?;
        if status != StatusCode::OK {
            return Err(format!("initialize: HTTP {status}"));
        }
        let response = response.ok_or("initialize: no response")?;
        let version = response["result"]["protocolVersion"]
            .as_str()
            .ok_or_else(|| format!("initialize failed: {response}"))?
            .to_string();
        if let Session::Streamable { id, version: v, .. } = &mut session {
            *id = sid;
            *v = version;
        }
        let (status, _, _) = session.post(&mut conn, INITIALIZED.into(), None).await?;
        if !status.is_success() {
            return Err(format!("notifications/initialized: HTTP {status}"));
        }
        Ok(session)
    }

    /// POSTs one message on a Streamable HTTP session; returns the status, the
    /// `Mcp-Session-Id` header and, when `expect` is an id, the response with that id (from a
    /// JSON body or an SSE stream).
    async fn post(
        &self,
        conn: &mut Conn,
        body: String,
        expect: Option<u64>,
    ) -> Result<(StatusCode, Option<String>, Option<Value>), Error> {
        let Session::Streamable { uri, id, version } = self else {
            unreachable!("post on a non-Streamable session")
        };
        let mut req = Request::post(origin_form(uri))
            .header("host", uri.authority().unwrap().as_str())
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream");
        if let Some(id) = id {
            req = req
                .header("mcp-session-id", id)
                .header("mcp-protocol-version", version);
        }
        let req = req.body(Full::new(Bytes::from(body))).map_err(err)?;
        conn.ready().await.map_err(err)?;
        let resp = conn.send_request(req).await.map_err(err)?;
        let status = resp.status();
        let sid = resp
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let sse = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        let body = resp.into_body().collect().await.map_err(err)?.to_bytes();
        let Some(want) = expect else {
            return Ok((status, sid, None));
        };
        if !sse {
            let v: Value = serde_json::from_slice(&body).map_err(err)?;
            return Ok((status, sid, Some(v)));
        }
        let mut events =
            futures_util::stream::iter([Ok::<_, std::convert::Infallible>(body)]).eventsource();
        while let Some(Ok(event)) = events.next().await {
            if let Ok(v) = serde_json::from_str::<Value>(&event.data) {
                if v["id"].as_u64() == Some(want) {
                    return Ok((status, sid, Some(v)));
                }
            }
        }
        Ok((status, sid, None))
    }

    async fn open_sse(url: &str) -> Result<Self, Error> {
        let uri: Uri = url.parse().map_err(err)?;
        let mut conn = connect(&uri).await?;
        let req = Request::get(origin_form(&uri))
            .header("host", uri.authority().unwrap().as_str())
            .header("accept", "text/event-stream")
            .body(Full::new(Bytes::new()))
            .map_err(err)?;
        let resp = conn.send_request(req).await.map_err(err)?;
        if resp.status() != StatusCode::OK {
            return Err(format!("GET {url}: HTTP {}", resp.status()));
        }
        let mut events = resp.into_body().into_data_stream().eventsource();
        let endpoint = loop {
            match events.next().await {
                Some(Ok(e)) if e.event == "endpoint" => break e.data,
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(err(e)),
                None => return Err("SSE stream ended before the endpoint event".into()),
            }
        };
        let post: Uri = if endpoint.starts_with("http") {
            endpoint.parse().map_err(err)?
        } else {
            format!(
                "{}://{}{}",
                uri.scheme_str().unwrap_or("http"),
                uri.authority().unwrap(),
                endpoint
            )
            .parse()
            .map_err(err)?
        };
        let pending = Arc::new(Pending::default());
        let reader_pending = pending.clone();
        let reader = tokio::spawn(async move {
            let _conn = conn; // the stream lives as long as its connection
            while let Some(Ok(event)) = events.next().await {
                if event.event.is_empty() || event.event == "message" {
                    if let Ok(v) = serde_json::from_str(&event.data) {
                        reader_pending.dispatch(v);
                    }
                }
            }
        });
        let session = Session::Sse {
            post,
            pending,
            _reader: Task(reader),
        };
        session.handshake().await?;
        Ok(session)
    }

    async fn open_ws(url: &str) -> Result<Self, Error> {
        use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Message};
        let mut req = url.into_client_request().map_err(err)?;
        req.headers_mut()
            .insert("sec-websocket-protocol", "mcp".parse().unwrap());
        let (ws, _) = tokio_tungstenite::connect_async_with_config(req, None, true)
            .await
            .map_err(err)?;
        let (mut sink, stream) = ws.split();
        let (tx, mut rx) = mpsc::unbounded_channel::<String>();
        let writer = tokio::spawn(async move {
            while let Some(text) = rx.recv().await {
                if sink.feed(Message::text(text)).await.is_err() {
                    return;
                }
                while let Ok(text) = rx.try_recv() {
                    if sink.feed(Message::text(text)).await.is_err() {
                        return;
                    }
                }
                if sink.flush().await.is_err() {
                    return;
                }
            }
        });
        let incoming = futures_util::stream::unfold(stream, |mut stream| async move {
            let text = match stream.next().await? {
                Ok(Message::Text(text)) => text.to_string(),
                Ok(_) => String::new(),
                Err(_) => return None,
            };
            Some((text, stream))
        });
        Self::framed(tx, writer, incoming).await
    }

    async fn open_direct(child: &[String]) -> Result<Self, Error> {
        let mut process = tokio::process::Command::new(&child[0])
            .args(&child[1..])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(err)?;
        let stdin = process.stdin.take().unwrap();
        let stdout = process.stdout.take().unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel::<String>();
        let writer = tokio::spawn(async move {
            let _process = process; // killed when the session is dropped
            let mut stdin = BufWriter::new(stdin);
            while let Some(line) = rx.recv().await {
                let mut next = Some(line);
                while let Some(line) = next {
                    if stdin.write_all(line.as_bytes()).await.is_err()
                        || stdin.write_all(b"\n").await.is_err()
                    {
                        return;
                    }
                    next = rx.try_recv().ok();
                }
                if stdin.flush().await.is_err() {
                    return;
                }
            }
        });
        let lines = BufReader::new(stdout).lines();
        let incoming = futures_util::stream::unfold(lines, |mut lines| async move {
            let line = lines.next_line().await.ok()??;
            Some((line, lines))
        });
        Self::framed(tx, writer, incoming).await
    }

    /// A session whose messages go out through `writer` (fed by `tx`) and come in as text from
    /// `incoming` (ending at `None`); performs the handshake.
    async fn framed(
        tx: mpsc::UnboundedSender<String>,
        writer: JoinHandle<()>,
        incoming: impl futures_util::Stream<Item = String> + Send + 'static,
    ) -> Result<Self, Error> {
        let pending = Arc::new(Pending::default());
        let reader_pending = pending.clone();
        let reader = tokio::spawn(async move {
            let mut incoming = std::pin::pin!(incoming);
            while let Some(text) = incoming.next().await {
                if let Ok(v) = serde_json::from_str(&text) {
                    reader_pending.dispatch(v);
                }
            }
        });
        let session = Session::Framed {
            tx,
            pending,
            _tasks: vec![Task(writer), Task(reader)],
        };
        session.handshake().await?;
        Ok(session)
    }

    /// `initialize` and `notifications/initialized` over a stream-based session.
    async fn handshake(&self) -> Result<(), Error> {
        let id = INIT_IDS.fetch_add(1, Ordering::Relaxed);
        let mut conn = None;
        let response = self
            .call_mux(&mut conn, id, initialize_body(id))
            .await?
            .ok_or("initialize: no response")?;
        if response["result"]["protocolVersion"].as_str().is_none() {
            return Err(format!("initialize failed: {response}"));
        }
        self.send_mux(&mut conn, INITIALIZED.into()).await
    }

    /// Sends one message on a stream-based session without waiting for anything back.
    async fn send_mux(&self, conn: &mut Option<Conn>, body: String) -> Result<(), Error> {
        match self {
            Session::Sse { post, .. } => {
                if conn.as_ref().is_none_or(|c| c.is_closed()) {
                    *conn = Some(connect(post).await?);
                }
                let c = conn.as_mut().unwrap();
                let req = Request::post(origin_form(post))
                    .header("host", post.authority().unwrap().as_str())
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(body)))
                    .map_err(err)?;
                c.ready().await.map_err(err)?;
                let resp = c.send_request(req).await.map_err(err)?;
                let status = resp.status();
                let _ = resp.into_body().collect().await;
                if status.is_success() {
                    Ok(())
                } else {
                    Err(format!("POST {post}: HTTP {status}"))
                }
            }
            Session::Framed { tx, .. } => tx.send(body).map_err(|_| "connection closed".into()),
            Session::Streamable { .. } => unreachable!("send_mux on Streamable HTTP"),
        }
    }

    /// Sends a request on a stream-based session and waits for the response with `id`.
    async fn call_mux(
        &self,
        conn: &mut Option<Conn>,
        id: u64,
        body: String,
    ) -> Result<Option<Value>, Error> {
        let pending = match self {
            Session::Sse { pending, .. } | Session::Framed { pending, .. } => pending,
            Session::Streamable { .. } => unreachable!("call_mux on Streamable HTTP"),
        };
        let rx = pending.register(id);
        if let Err(e) = self.send_mux(conn, body).await {
            pending.forget(id);
            return Err(e);
        }
        match tokio::time::timeout(REQUEST_TIMEOUT, rx).await {
            Ok(Ok(v)) => Ok(Some(v)),
            Ok(Err(_)) => Err("stream closed".into()),
            Err(_) => {
                pending.forget(id);
                Err("timed out".into())
            }
        }
    }

    /// Opens the session's standalone GET stream (Streamable HTTP); the returned value holds the
    /// connection and the unread stream open until dropped.
    pub async fn open_stream(&self) -> Result<impl Sized, Error> {
        let Session::Streamable { uri, id, version } = self else {
            return Err("GET streams exist only on Streamable HTTP".into());
        };
        let mut conn = connect(uri).await?;
        let mut req = Request::get(origin_form(uri))
            .header("host", uri.authority().unwrap().as_str())
            .header("accept", "text/event-stream");
        if let Some(id) = id {
            req = req
                .header("mcp-session-id", id)
                .header("mcp-protocol-version", version);
        }
        let req = req.body(Full::new(Bytes::new())).map_err(err)?;
        let resp = conn.send_request(req).await.map_err(err)?;
        if resp.status() != StatusCode::OK {
            return Err(format!("GET: HTTP {}", resp.status()));
        }
        Ok((conn, resp.into_body()))
    }

    /// Sends the request `body` with `id` and returns its response. `conn` is the calling
    /// worker's own HTTP connection (opened or reopened as needed; unused by WebSocket and
    /// direct sessions).
    pub async fn call(
        &self,
        conn: &mut Option<Conn>,
        id: u64,
        body: String,
    ) -> Result<Value, Error> {
        match self {
            Session::Streamable { uri, .. } => {
                if conn.as_ref().is_none_or(|c| c.is_closed()) {
                    *conn = Some(connect(uri).await?);
                }
                let call = self.post(conn.as_mut().unwrap(), body, Some(id));
                match tokio::time::timeout(REQUEST_TIMEOUT, call).await {
                    Ok(Ok((StatusCode::OK, _, Some(v)))) => Ok(v),
                    Ok(Ok((status, _, _))) => Err(format!("HTTP {status}")),
                    Ok(Err(e)) => {
                        *conn = None;
                        Err(e)
                    }
                    Err(_) => {
                        *conn = None;
                        Err("timed out".into())
                    }
                }
            }
            _ => self
                .call_mux(conn, id, body)
                .await?
                .ok_or_else(|| "no response".into()),
        }
    }
}
