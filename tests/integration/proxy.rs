//! Behind a real reverse proxy: nginx (Debian package) started on loopback with
//! tests/nginx/nginx.conf.template, forwarding `/prefix/...` to the bridge. Streamable HTTP,
//! legacy SSE and WebSocket work through it, and an event sent while a tool still runs reaches
//! the client before the tool finishes.

use crate::support::*;
use crate::transports::{ws_next, SseSession};
use futures_util::SinkExt;
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message as Frame;

/// An nginx process in its own directory; killed (by pid) and removed on drop.
pub struct Nginx {
    process: Child,
    /// Its scratch directory (config, logs).
    pub dir: PathBuf,
    /// The loopback port it listens on.
    pub port: u16,
}

impl Nginx {
    /// nginx with tests/nginx/nginx.conf.template in front of the bridge at `upstream`.
    async fn start(upstream: std::net::SocketAddr) -> Nginx {
        let port = upstream.port().to_string();
        Nginx::start_with("nginx.conf.template", &[("@UPSTREAM_PORT@", &port)]).await
    }

    /// nginx with `tests/nginx/TEMPLATE`, its `@DIR@` and `@PORT@` filled in and each
    /// `(placeholder, value)` of `vars` replaced; waits (at most 10 s) until it answers
    /// `/_nginx/healthz`.
    pub async fn start_with(template: &str, vars: &[(&str, &str)]) -> Nginx {
        let binary = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists());
        let binary = binary
            .expect("nginx is not installed: scripts/test installs it (apt-get install nginx)");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir =
            std::env::temp_dir().join(format!("mcp-bridge-nginx-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let template =
            std::fs::read_to_string(repo_root().join("tests/nginx").join(template)).unwrap();
        let mut conf = template
            .replace("@DIR@", &dir.display().to_string())
            .replace("@PORT@", &port.to_string());
        for (placeholder, value) in vars {
            conf = conf.replace(placeholder, value);
        }
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let d = dir.display().to_string();
        let process = Command::new(binary)
            .args([
                "-c",
                &conf_path.display().to_string(),
                "-p",
                &d,
                "-e",
                &format!("{d}/error.log"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting nginx");
        let nginx = Nginx { process, dir, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let ok = http()
                .get(nginx.url("/_nginx/healthz"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200);
            if ok {
                return nginx;
            }
            assert!(
                Instant::now() < deadline,
                "nginx did not start: {:?}",
                std::fs::read_to_string(nginx.dir.join("error.log"))
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn streamable_http_sse_and_websocket_work_through_nginx_with_a_path_prefix() {
    let bridge = Bridge::echo(&["--trust-forwarded-prefix"], &[]).await;
    let nginx = Nginx::start(bridge.addr).await;
    // Streamable HTTP.
    let http = http();
    let url = nginx.url("/prefix/mcp");
    let resp = post_json(&http, &url, None, &initialize_body(json!(1), "2025-11-25")).await;
    assert_eq!(resp.status(), 200);
    let id = session_id(&resp);
    let s = Session {
        http: http.clone(),
        url,
        id,
    };
    assert_eq!(
        tool_text(
            &s.request(&tool_call(
                json!(2),
                "echo",
                json!({"message": "via nginx"})
            ))
            .await
        ),
        "via nginx"
    );
    // Legacy SSE: the endpoint carries the proxy's prefix, and POSTs through it work.
    let mut sse = SseSession::open(&nginx.url(""), "/prefix/sse", &[]).await;
    assert!(
        sse.endpoint.starts_with("/prefix/message?sessionId="),
        "{}",
        sse.endpoint
    );
    sse.request(&initialize_body(json!(1), "2024-11-05")).await;
    let (_, r) = sse
        .request(&tool_call(
            json!(2),
            "echo",
            json!({"message": "sse via nginx"}),
        ))
        .await;
    assert_eq!(tool_text(&r), "sse via nginx");
    // WebSocket.
    let mut req = format!("ws://127.0.0.1:{}/prefix/ws", nginx.port)
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("sec-websocket-protocol", "mcp".parse().unwrap());
    let (mut ws, resp) = tokio_tungstenite::connect_async(req)
        .await
        .expect("WebSocket through nginx");
    assert_eq!(resp.headers()["sec-websocket-protocol"], "mcp");
    ws.send(Frame::text(
        initialize_body(json!(1), "2025-11-25").to_string(),
    ))
    .await
    .unwrap();
    assert!(ws_next(&mut ws).await.get("result").is_some());
    ws.send(Frame::text(
        tool_call(json!(2), "echo", json!({"message": "ws via nginx"})).to_string(),
    ))
    .await
    .unwrap();
    assert_eq!(tool_text(&ws_next(&mut ws).await), "ws via nginx");
}

/// POSTs a `sleep` of `ms` with a progress token through `url` with curl (`--compressed` when
/// `gzip`) and returns when the first and the last SSE event arrived, in ms since the request.
fn timed_sse_call(url: &str, session: &str, ms: u64, gzip: bool) -> (u128, u128, String) {
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": "sleep", "arguments": {"ms": ms}, "_meta": {"progressToken": "p1"}}});
    let mut cmd = Command::new("curl");
    cmd.args([
        "-sN",
        "--max-time",
        "20",
        "-H",
        "content-type: application/json",
    ])
    .args([
        "-H",
        "accept: application/json, text/event-stream",
        "-H",
        &format!("mcp-session-id: {session}"),
    ])
    .args(["-d", &body.to_string(), url])
    .stdout(Stdio::piped());
    if gzip {
        cmd.arg("--compressed");
    }
    let started = Instant::now();
    let mut child = cmd.spawn().expect("curl runs");
    let (mut first, mut last, mut text) = (None, 0, String::new());
    for line in BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
    {
        if line.starts_with("data: ") {
            first.get_or_insert(started.elapsed().as_millis());
            last = started.elapsed().as_millis();
            text.push_str(&line);
            text.push('\n');
        }
    }
    let _ = child.wait();
    (first.expect("at least one event"), last, text)
}

#[tokio::test]
async fn an_event_sent_while_a_tool_runs_arrives_before_the_tool_finishes() {
    let bridge = Bridge::echo(&[], &[]).await;
    let nginx = Nginx::start(bridge.addr).await;
    let url = nginx.url("/prefix/mcp");
    let resp = post_json(
        &http(),
        &url,
        None,
        &initialize_body(json!(1), "2025-11-25"),
    )
    .await;
    let session = session_id(&resp);
    // /prefix/ is configured as operators do (proxy_buffering off); /buffered/ buffers and gzips
    // event streams, where only the bridge's own X-Accel-Buffering: no keeps events flowing.
    for (path, gzip) in [("/prefix/mcp", false), ("/buffered/mcp", true)] {
        let url = nginx.url(path);
        let (session, url2) = (session.clone(), url.clone());
        let (first, last, text) =
            tokio::task::spawn_blocking(move || timed_sse_call(&url2, &session, 1500, gzip))
                .await
                .unwrap();
        assert!(
            text.contains("notifications/progress") && text.contains("slept 1500 ms"),
            "{path}: {text}"
        );
        assert!(
            first < 1000,
            "{path}: the progress event arrived after {first} ms, i.e. buffered"
        );
        assert!(last >= 1500, "{path}: the result arrived after {last} ms");
    }
}
