//! `mcp-bridge connect URL`: the stdio side. The official TypeScript SDK client spawns
//! `connect` over `StdioClientTransport` against servers we did not write (server-everything
//! behind mcp-bridge, a Python SDK FastMCP server over Streamable HTTP and HTTP+SSE, the
//! TypeScript SDK's example servers), and raw JSON-RPC lines test recovery, auth, exits and bad
//! input precisely.

use crate::support::*;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

/// `mcp-bridge connect ARGS` with piped stdio; killed on drop.
struct Connect {
    child: tokio::process::Child,
    stdin: Option<tokio::process::ChildStdin>,
    stdout: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    stderr: Arc<Mutex<String>>,
}

impl Connect {
    fn start(args: &[&str]) -> Connect {
        let mut child = tokio::process::Command::new(bridge_bin())
            .arg("connect")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawning mcp-bridge connect");
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let mut text = sink.lock().unwrap();
                text.push_str(&line);
                text.push('\n');
            }
        });
        Connect {
            stdin: child.stdin.take(),
            stdout: tokio::io::BufReader::new(child.stdout.take().unwrap()).lines(),
            stderr,
            child,
        }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    async fn send_raw(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
        stdin.flush().await.unwrap();
    }

    async fn send(&mut self, message: &Value) {
        self.send_raw(&message.to_string()).await;
    }

    /// The next stdout line as JSON (every line must be JSON), within 20 s.
    async fn recv(&mut self) -> Value {
        let line = tokio::time::timeout(Duration::from_secs(20), self.stdout.next_line())
            .await
            .unwrap_or_else(|_| panic!("no stdout line within 20 s; stderr:\n{}", self.stderr()))
            .unwrap()
            .unwrap_or_else(|| panic!("stdout closed; stderr:\n{}", self.stderr()));
        let message: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("stdout line {line:?} is not JSON: {e}"));
        let id = message["id"].as_str().unwrap_or("");
        assert!(
            !id.starts_with("mcp-bridge-connect-"),
            "a reserved id leaked: {line}"
        );
        message
    }

    /// The response with `id`, skipping notifications and server requests.
    async fn response(&mut self, id: Value) -> Value {
        self.response_after(id).await.0
    }

    /// The response with `id`, and the notifications and server requests before it.
    async fn response_after(&mut self, id: Value) -> (Value, Vec<Value>) {
        let mut before = Vec::new();
        loop {
            let m = self.recv().await;
            if m.get("method").is_none() && m["id"] == id {
                return (m, before);
            }
            before.push(m);
        }
    }

    /// Sends a request and returns its `result` (panics on an error answer).
    async fn request(&mut self, id: &str, method: &str, params: Value) -> Value {
        let request = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        self.send(&request).await;
        let answer = self.response(json!(id)).await;
        assert!(answer.get("result").is_some(), "{method}: {answer}");
        answer["result"].clone()
    }

    /// `initialize` (id 0) and `notifications/initialized`; returns the initialize response.
    async fn initialize(&mut self) -> Value {
        self.send(&initialize_body(json!(0), "2025-11-25")).await;
        let answer = self.response(json!(0)).await;
        self.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        answer
    }

    async fn call(&mut self, id: i64, name: &str, args: Value) -> Value {
        self.send(&tool_call(json!(id), name, args)).await;
        self.response(json!(id)).await
    }

    /// Closes stdin and waits (at most `limit`) for the exit status.
    async fn finish(mut self, limit: Duration) -> (ExitStatus, String) {
        drop(self.stdin.take());
        let status = tokio::time::timeout(limit, self.child.wait())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "connect did not exit within {limit:?}; stderr:\n{}",
                    self.stderr()
                )
            })
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        (status, self.stderr())
    }

    /// Waits (at most 20 s) for the exit status without closing stdin.
    async fn exit(mut self) -> (ExitStatus, String, Vec<Value>) {
        let status = tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .expect("connect exits by itself")
            .unwrap();
        let mut out = Vec::new();
        while let Ok(Some(line)) = self.stdout.next_line().await {
            out.push(serde_json::from_str(&line).expect("stdout carries JSON only"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        (status, self.stderr(), out)
    }
}

/// A peer server process that prints `LISTENING <port>` (stdout or stderr) once it listens on
/// 127.0.0.1; killed on drop.
struct Peer {
    child: Child,
    port: u16,
}

impl Peer {
    fn start(program: &std::path::Path, args: &[&str]) -> Peer {
        let mut child = Command::new(program)
            .args(args)
            .current_dir(interop_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", program.display()));
        let (tx, rx) = std::sync::mpsc::channel();
        let readers: [Box<dyn std::io::Read + Send>; 2] = [
            Box::new(child.stdout.take().unwrap()),
            Box::new(child.stderr.take().unwrap()),
        ];
        for reader in readers {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(reader).lines().map_while(Result::ok) {
                    if let Some(port) = line.strip_prefix("LISTENING ") {
                        let _ = tx.send(port.trim().parse::<u16>().expect("a port"));
                    }
                }
            });
        }
        let port = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| {
                let _ = child.kill();
                panic!("{} {args:?} did not start listening", program.display())
            });
        Peer { child, port }
    }

    fn python(transport: &str) -> Peer {
        Peer::start(
            &interop_dir().join(".venv/bin/python"),
            &["py_server.py", transport],
        )
    }

    fn ts_example(name: &str) -> Peer {
        Peer::start(
            std::path::Path::new("node"),
            &["ts_example_server.mjs", name],
        )
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `ts_connect.mjs ARGS` (the TypeScript SDK client spawning `connect`).
async fn ts_connect(args: &[&str]) -> Value {
    let mut all = vec![args[0], bridge_bin()];
    all.extend_from_slice(&args[1..]);
    run_client("node".into(), "ts_connect.mjs", &all).await
}

async fn everything_bridge() -> Bridge {
    let bridge = Bridge::start(&["--forward", "sampling"], &everything_child());
    bridge.wait_ready().await;
    bridge
}

#[tokio::test]
async fn ts_sdk_client_over_connect_lists_calls_gets_progress_and_answers_sampling() {
    let bridge = everything_bridge().await;
    let summary = ts_connect(&["everything", &bridge.url()]).await;
    assert_eq!(summary["progress"], 3, "{summary}");
    assert_eq!(summary["samplingCalls"], 1, "{summary}");
}

#[tokio::test]
async fn auto_falls_back_to_http_sse_and_websocket_urls_use_websocket() {
    let bridge = everything_bridge().await;
    let sse = ts_connect(&["everything", &bridge.at("/sse")]).await;
    assert_eq!(sse["samplingCalls"], 1, "{sse}");
    let ws = format!("ws://{}/ws", bridge.addr);
    let ws = ts_connect(&["everything", &ws]).await;
    assert_eq!(ws["samplingCalls"], 1, "{ws}");
}

#[tokio::test]
async fn connect_serves_a_python_fastmcp_server_over_streamable_http_and_sse() {
    for (transport, path) in [("streamable-http", "/mcp"), ("sse", "/sse")] {
        let peer = Peer::python(transport);
        let summary = ts_connect(&[
            "call",
            &peer.url(path),
            "add",
            r#"{"a":2,"b":40}"#,
            "sum=42",
        ])
        .await;
        assert_eq!(
            summary["server"], "interop-py-server",
            "{transport}: {summary}"
        );
    }
}

#[tokio::test]
async fn connect_serves_the_typescript_sdk_example_streamable_http_server() {
    let peer = Peer::ts_example("simpleStreamableHttp");
    let summary = ts_connect(&[
        "call",
        &peer.url("/mcp"),
        "greet",
        r#"{"name":"Ada"}"#,
        "Hello, Ada",
    ])
    .await;
    assert_eq!(
        summary["server"], "simple-streamable-http-server",
        "{summary}"
    );
}

#[tokio::test]
async fn a_response_stream_the_server_closes_mid_call_is_resumed_with_last_event_id() {
    let peer = Peer::ts_example("ssePollingExample");
    let summary = ts_connect(&["polling", &peer.url("/mcp")]).await;
    assert!(summary["resumed"].as_u64().unwrap() >= 1, "{summary}");
}

/// Starts a bridge on a fixed port and `connect` to `scheme://127.0.0.1:PORT/path`, calls
/// `echo`, sets a log level and subscribes to a resource, restarts the bridge on the same port
/// and calls again: that call must succeed, connect's stderr must contain `logged`, and the new
/// session must have the level and the subscription (the new child is told both, and a touched
/// resource notifies the client). Ends with stdin closed (exit 0).
async fn restart_between_calls(scheme: &str, path: &str, logged: &str) {
    let port = free_port().to_string();
    let child = echo_child(&["--stderr-chatter"]);
    let mut bridge = Bridge::start(&["--port", &port], &child);
    bridge.wait_ready().await;
    let mut connect = Connect::start(&[&format!("{scheme}://127.0.0.1:{port}{path}")]);
    connect.initialize().await;
    let first = connect.call(1, "echo", json!({"message": "before"})).await;
    assert_eq!(tool_text(&first), "before", "{path}: {first}");
    let uri = "test://restored";
    connect
        .request("lvl", "logging/setLevel", json!({"level": "error"}))
        .await;
    connect
        .request("sub", "resources/subscribe", json!({"uri": uri}))
        .await;
    bridge.terminate();
    let bridge = Bridge::start(&["--port", &port], &child);
    bridge.wait_ready().await;
    for (id, message) in [(2, "after"), (3, "again")] {
        let answer = connect.call(id, "echo", json!({"message": message})).await;
        let stderr = connect.stderr();
        assert_eq!(
            tool_text(&answer),
            message,
            "{path}: {answer}; stderr:\n{stderr}"
        );
    }
    assert!(
        connect.stderr().contains(logged),
        "{path}: {}",
        connect.stderr()
    );
    // The subscription lives on: the new child has it, and its update reaches the client.
    connect
        .send(&tool_call(json!(4), "touch", json!({"uri": uri})))
        .await;
    let (touched, mut seen) = connect.response_after(json!(4)).await;
    assert_eq!(tool_text(&touched), "updated", "{path}: {touched}");
    let updated =
        |m: &Value| m["method"] == "notifications/resources/updated" && m["params"]["uri"] == uri;
    while !seen.iter().any(updated) {
        seen.push(connect.recv().await);
    }
    // So does the log level: only the repeated setLevel can have told the new child.
    let logs = bridge.logs().join("\n");
    assert!(
        logs.contains("got logging/setLevel"),
        "{path}: the new child never got the level: {logs}"
    );
    let (status, stderr) = connect.finish(Duration::from_secs(5)).await;
    assert_eq!(status.code(), Some(0), "{path}: {stderr}");
    drop(bridge);
}

#[tokio::test]
async fn after_the_remote_restarts_the_next_call_succeeds_in_a_new_session() {
    restart_between_calls("http", "/mcp", "opened a new one and carried on").await;
}

#[tokio::test]
async fn the_bearer_token_file_reaches_the_remote_and_a_refused_token_exits_77() {
    let bridge = Bridge::start_with_env(
        &[],
        &echo_child(&[]),
        &[("MCP_BRIDGE_AUTH_TOKEN", "right-token")],
    );
    bridge.wait_ready().await;
    let dir = Scratch::new("connect-token");
    std::fs::write(dir.file("good"), "right-token\n").unwrap();
    std::fs::write(dir.file("bad"), "wrong-token\n").unwrap();
    let good = dir.file("good").display().to_string();
    let mut connect = Connect::start(&[&bridge.url(), "--bearer-token-file", &good]);
    connect.initialize().await;
    let answer = connect
        .call(1, "echo", json!({"message": "authorized"}))
        .await;
    assert_eq!(tool_text(&answer), "authorized", "{answer}");
    let (status, _) = connect.finish(Duration::from_secs(5)).await;
    assert_eq!(status.code(), Some(0));

    // --header reaches the remote the same way.
    let mut by_header = Connect::start(&[&bridge.url(), "-H", "Authorization: Bearer right-token"]);
    by_header.initialize().await;
    let answer = by_header
        .call(1, "echo", json!({"message": "by header"}))
        .await;
    assert_eq!(tool_text(&answer), "by header", "{answer}");
    drop(by_header);

    let bad = dir.file("bad").display().to_string();
    let mut refused = Connect::start(&[&bridge.url(), "--bearer-token-file", &bad]);
    refused.send(&initialize_body(json!(0), "2025-11-25")).await;
    let (status, stderr, out) = refused.exit().await;
    assert_eq!(status.code(), Some(77), "{stderr}");
    assert!(
        stderr.contains("401")
            && stderr.contains("WWW-Authenticate")
            && stderr.contains("--bearer-token-file"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("wrong-token"),
        "the token is never printed: {stderr}"
    );
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0]["id"], 0);
    assert!(
        out[0]["error"]["message"].as_str().unwrap().contains("401"),
        "{out:?}"
    );
}

#[tokio::test]
async fn an_unreachable_remote_exits_69_and_a_url_without_mcp_exits_76() {
    let closed = format!("http://127.0.0.1:{}/mcp", free_port());
    let mut connect = Connect::start(&[&closed]);
    connect
        .send(&initialize_body(json!("init"), "2025-11-25"))
        .await;
    let (status, stderr, out) = connect.exit().await;
    assert_eq!(status.code(), Some(69), "{stderr}");
    assert!(stderr.contains("cannot reach the remote"), "{stderr}");
    assert_eq!(out[0]["id"], "init", "{out:?}");

    let bridge = Bridge::echo(&[], &[]).await;
    let mut connect = Connect::start(&[&bridge.at("/not-mcp")]);
    connect.send(&initialize_body(json!(1), "2025-11-25")).await;
    let (status, stderr, _) = connect.exit().await;
    assert_eq!(status.code(), Some(76), "{stderr}");
    assert!(stderr.contains("neither Streamable HTTP"), "{stderr}");
}

#[tokio::test]
async fn cancellation_passes_through_and_bad_lines_are_answered_without_ending_the_session() {
    let bridge = Bridge::echo(&[], &[]).await;
    let mut connect = Connect::start(&[&bridge.url()]);
    connect
        .send(&tool_call(json!(9), "echo", json!({"message": "early"})))
        .await;
    let early = connect.recv().await;
    assert_eq!(early["id"], 9);
    assert!(
        early["error"]["message"]
            .as_str()
            .unwrap()
            .contains("initialize first"),
        "{early}"
    );
    connect.initialize().await;
    connect.send_raw("this is not json").await;
    let parse = connect.recv().await;
    assert_eq!(parse["error"]["code"], -32700, "{parse}");
    connect
        .send_raw(r#"{"jsonrpc":"2.0","id":{"bad":1},"method":"x"}"#)
        .await;
    assert_eq!(connect.recv().await["error"]["code"], -32600);
    // Ids of connect's own requests are not the client's to use (read raw: `recv` refuses them).
    connect
        .send(&tool_call(
            json!("mcp-bridge-connect-mine"),
            "echo",
            json!({"message": "x"}),
        ))
        .await;
    let line = tokio::time::timeout(Duration::from_secs(20), connect.stdout.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let reserved: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(reserved["error"]["code"], -32600, "{reserved}");
    assert_eq!(reserved["id"], "mcp-bridge-connect-mine", "{reserved}");

    connect
        .send(&tool_call(json!(5), "sleep", json!({"ms": 10000})))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    connect
        .send(&json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 5}}))
        .await;
    let mut counted = 0;
    for attempt in 0..50 {
        let answer = connect
            .call(100 + attempt, "cancellations", json!({}))
            .await;
        counted = tool_text(&answer).parse::<u64>().unwrap_or(0);
        if counted >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(counted, 1, "the cancellation reached the child");
    let echo = connect
        .call(6, "echo", json!({"message": "still here"}))
        .await;
    assert_eq!(tool_text(&echo), "still here");
    let (status, stderr) = connect.finish(Duration::from_secs(5)).await;
    assert_eq!(status.code(), Some(0), "{stderr}");
}

#[tokio::test]
async fn closing_stdin_ends_the_remote_session_with_delete_and_exits_0_quickly() {
    let bridge = Bridge::echo(&[], &[]).await;
    let mut connect = Connect::start(&[&bridge.url()]);
    connect.initialize().await;
    assert_eq!(
        tool_text(&connect.call(1, "echo", json!({"message": "x"})).await),
        "x"
    );
    let active = |n: u8| format!("mcp_bridge_sessions_active{{transport=\"streamable-http\"}} {n}");
    let text = metrics_text(&bridge).await;
    assert!(text.contains(&active(1)), "{text}");
    let started = std::time::Instant::now();
    let (status, stderr) = connect.finish(Duration::from_secs(5)).await;
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "exit took {:?}",
        started.elapsed()
    );
    assert!(stderr.contains("remote session ended (DELETE)"), "{stderr}");
    let text = metrics_text(&bridge).await;
    assert!(
        text.contains(&active(0)),
        "the DELETE ended the session: {text}"
    );
}

#[tokio::test]
async fn usage_errors_exit_64_with_the_reason() {
    let cases: [(&[&str], &str); 4] = [
        (&["ftp://h/"], "scheme"),
        (
            &["http://h/", "-H", "Mcp-Session-Id: x"],
            "set by the transport",
        ),
        (
            &["http://h/", "--bearer-token-file", "/nonexistent/token"],
            "--bearer-token-file",
        ),
        (&[], "URL"),
    ];
    for (args, expect) in cases {
        let out = Command::new(bridge_bin())
            .arg("connect")
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {stderr}");
        assert!(stderr.contains(expect), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty());
    }
}

#[tokio::test]
async fn sigterm_or_stdin_closing_ends_connect_at_once_even_while_the_remote_hangs() {
    // A remote that accepts connections and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/mcp", silent.local_addr().unwrap());
    for how in ["SIGTERM", "stdin closed"] {
        let mut connect = Connect::start(&[&url, "--timeout", "60s"]);
        connect.send(&initialize_body(json!(1), "2025-11-25")).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let started = std::time::Instant::now();
        let (status, stderr) = match how {
            "SIGTERM" => {
                signal(
                    connect.child.id().unwrap(),
                    nix::sys::signal::Signal::SIGTERM,
                );
                let (status, stderr, out) = connect.exit().await;
                assert!(out.is_empty(), "{how}: nothing on stdout: {out:?}");
                (status, stderr)
            }
            _ => connect.finish(Duration::from_secs(5)).await,
        };
        assert_eq!(status.code(), Some(0), "{how}: {stderr}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{how}: took {:?}",
            started.elapsed()
        );
    }
    drop(silent);
}

#[tokio::test]
async fn over_websocket_and_http_sse_a_restarted_remote_is_reconnected_and_reinitialized() {
    for (scheme, path) in [("ws", "/ws"), ("http", "/sse")] {
        restart_between_calls(scheme, path, "reconnected and opened a new session").await;
    }
}

#[tokio::test]
async fn a_redirect_to_another_origin_is_refused_and_credentials_never_reach_it() {
    use std::io::{Read, Write};
    // The other origin: a listener that must never see a connection.
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    other.set_nonblocking(true).unwrap();
    let elsewhere = format!("http://{}/mcp", other.local_addr().unwrap());
    // The remote: answers every request with 307 to the other origin.
    let remote = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/mcp", remote.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in remote.incoming().take(4) {
            let Ok(mut stream) = stream else { return };
            let mut head = [0u8; 4096];
            let _ = stream.read(&mut head);
            let answer = format!(
                "HTTP/1.1 307 Temporary Redirect\r\nLocation: {elsewhere}\r\n\
                 Content-Length: 0\r\nConnection: close\r\n\r\n"
            );
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    let mut connect = Connect::start(&[&url, "-H", "Authorization: Bearer secret-token"]);
    connect.send(&initialize_body(json!(1), "2025-11-25")).await;
    let (status, stderr, out) = connect.exit().await;
    assert_eq!(status.code(), Some(69), "{stderr}");
    assert!(
        stderr.contains("refusing a redirect to another origin"),
        "{stderr}"
    );
    assert_eq!(out[0]["id"], 1, "{out:?}");
    assert!(other.accept().is_err(), "the other origin was contacted");
}

/// Writes `token` to the bridge's `--auth-token-file` and waits (at most 10 s) until SIGHUP
/// has reloaded it.
async fn rotate(bridge: &Bridge, file: &std::path::Path, token: &str) {
    let reloads = || {
        bridge
            .logs()
            .iter()
            .filter(|l| l.contains("SIGHUP: reloaded"))
            .count()
    };
    std::fs::write(file, format!("{token}\n")).unwrap();
    let before = reloads();
    signal(bridge.pid(), nix::sys::signal::Signal::SIGHUP);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while reloads() == before {
        assert!(
            std::time::Instant::now() < deadline,
            "the bridge never reloaded"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_rotated_token_is_read_again_from_the_file_after_a_refusal() {
    let dir = Scratch::new("connect-rotation");
    let served = dir.file("served");
    std::fs::write(&served, "token-one\n").unwrap();
    let served_arg = served.display().to_string();
    let mut bridge = Bridge::start(&["--auth-token-file", &served_arg], &echo_child(&[]));
    bridge.wait_ready().await;
    for path in ["/mcp", "/sse"] {
        let name = path.trim_start_matches('/');
        let ours = dir.file(name);
        std::fs::write(&ours, "token-one\n").unwrap();
        let url = format!("http://{}{path}", bridge.addr);
        let mut connect =
            Connect::start(&[&url, "--bearer-token-file", &ours.display().to_string()]);
        connect.initialize().await;
        let first = connect.call(1, "echo", json!({"message": "one"})).await;
        assert_eq!(tool_text(&first), "one", "{path}: {first}");

        // The remote moves to a new token while our file still holds the old one: an error for
        // that call, and the session goes on.
        let next = format!("token-two-{name}");
        rotate(&bridge, &served, &next).await;
        let refused = connect.call(2, "echo", json!({"message": "two"})).await;
        let text = refused["error"]["message"].as_str().unwrap_or_default();
        assert!(text.contains("401"), "{path}: {refused}");

        // Our file gets the new token too: the next call is refused once, the file is read
        // again and the call sent once more. The bridge ties a session to its token, so that
        // meets 404: over Streamable HTTP connect recovers a session with the new token and the
        // client notices nothing; over HTTP+SSE the call gets an error and the connection is
        // made anew.
        std::fs::write(&ours, format!("{next}\n")).unwrap();
        let answer = connect.call(3, "echo", json!({"message": "three"})).await;
        if path == "/sse" {
            let text = answer["error"]["message"].as_str().unwrap_or_default();
            assert!(text.contains("404"), "{path}: {answer}");
            let answer = connect.call(4, "echo", json!({"message": "four"})).await;
            assert_eq!(tool_text(&answer), "four", "{path}: {answer}");
        } else {
            assert_eq!(tool_text(&answer), "three", "{path}: {answer}");
        }
        let (status, stderr) = connect.finish(Duration::from_secs(5)).await;
        assert_eq!(status.code(), Some(0), "{path}: {stderr}");
        assert!(stderr.contains("holds a new one"), "{path}: {stderr}");
        assert!(
            !stderr.contains("token-one") && !stderr.contains(&next),
            "{path}: the token is never printed: {stderr}"
        );
        rotate(&bridge, &served, "token-one").await;
    }
    bridge.terminate();
}
