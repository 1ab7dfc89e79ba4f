//! Test support: start and stop the real bridge binary, find the example child, talk MCP.

use reqwest::header::CONTENT_TYPE;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// Path of the bridge binary under test.
pub fn bridge_bin() -> &'static str {
    env!("CARGO_BIN_EXE_mcp-bridge")
}

/// Path of the `echo_server` example (built by `cargo test` next to the binary).
pub fn echo_server() -> PathBuf {
    let bin = PathBuf::from(bridge_bin());
    let path = bin.parent().unwrap().join("examples").join("echo_server");
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build --examples`",
        path.display()
    );
    path
}

/// The command line of the echo child with `flags`.
pub fn echo_child(flags: &[&str]) -> Vec<String> {
    let mut cmd = vec![echo_server().display().to_string()];
    cmd.extend(flags.iter().map(|f| f.to_string()));
    cmd
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A loopback port that was free a moment ago, for a bridge whose URL must be known before it
/// starts (e.g. its `--public-url`).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding a free port");
    listener.local_addr().expect("local address").port()
}

/// A running bridge process; stopped (SIGTERM, then SIGKILL) on drop.
pub struct Bridge {
    process: Child,
    /// The address it listens on.
    pub addr: SocketAddr,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Bridge {
    /// Starts `mcp-bridge --port 0 --log-format json ARGS -- CHILD...` and waits until it listens
    /// (`--port 0` is left out when ARGS has its own `--port`).
    pub fn start(args: &[&str], child: &[String]) -> Bridge {
        Bridge::start_with_env(args, child, &[])
    }

    /// Like [`Bridge::start`], with `env` added to the bridge's environment.
    pub fn start_with_env(args: &[&str], child: &[String], env: &[(&str, &str)]) -> Bridge {
        let port: &[&str] = match args.contains(&"--port") {
            true => &[],
            false => &["--port", "0"],
        };
        let mut process = Command::new(bridge_bin())
            .envs(env.iter().copied())
            .args(port)
            .args(["--log-format", "json", "--log-level", "debug"])
            .args(args)
            .arg("--")
            .args(child)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning mcp-bridge");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let stderr = process.stderr.take().unwrap();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = listen_addr(&line) {
                    let _ = tx.send(addr);
                }
                sink.lock().unwrap().push(line);
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = process.kill();
                panic!("bridge did not start listening: {:?}", logs.lock().unwrap());
            }
        };
        Bridge {
            process,
            addr,
            logs,
        }
    }

    /// Starts a bridge in front of the echo child with `child_flags`, waiting until ready.
    pub async fn echo(args: &[&str], child_flags: &[&str]) -> Bridge {
        let bridge = Bridge::start(args, &echo_child(child_flags));
        bridge.wait_ready().await;
        bridge
    }

    /// `http://ADDR/mcp`.
    pub fn url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }

    /// `http://ADDR` + `path`.
    pub fn at(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Polls `/readyz` until 200 (at most 30 s).
    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(r) = http().get(self.at("/readyz")).send().await {
                if r.status() == 200 {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("bridge never became ready: {}", self.logs().join("\n"));
    }

    /// Every log line so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    /// The bridge's pid.
    pub fn pid(&self) -> u32 {
        self.process.id()
    }

    /// Sends SIGTERM and waits (at most 30 s) for the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        signal(self.process.id(), nix::sys::signal::Signal::SIGTERM);
        self.wait_exit(Duration::from_secs(30))
            .expect("bridge did not exit within 30 s of SIGTERM")
    }

    /// Waits up to `limit` for the process to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.process.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        if self.process.try_wait().ok().flatten().is_some() {
            return;
        }
        signal(self.process.id(), nix::sys::signal::Signal::SIGTERM);
        if self.wait_exit(Duration::from_secs(15)).is_none() {
            let _ = self.process.kill();
            let _ = self.process.wait();
        }
    }
}

fn listen_addr(line: &str) -> Option<SocketAddr> {
    let v: Value = serde_json::from_str(line).ok()?;
    if v["message"] != "mcp-bridge listening" {
        return None;
    }
    v["listen"].as_str()?.parse().ok()
}

/// Sends `sig` to `pid`.
pub fn signal(pid: u32, sig: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig);
}

/// True while a process with `pid` exists (and is not a zombie we could still reap).
pub fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

/// A reqwest client that never uses a proxy.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// An `initialize` request body asking for `version`.
pub fn initialize_body(id: Value, version: &str) -> Value {
    json!({
        "jsonrpc": "2.0", "id": id, "method": "initialize",
        "params": {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "it", "version": "1"}},
    })
}

/// A `tools/call` request body.
pub fn tool_call(id: Value, name: &str, args: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": name, "arguments": args}})
}

/// A minimal MCP client over reqwest for one session.
#[derive(Clone)]
pub struct Session {
    pub http: reqwest::Client,
    pub url: String,
    pub id: String,
}

impl Session {
    /// Initializes a session with `version` (and sends `notifications/initialized`).
    pub async fn open(bridge: &Bridge, version: &str) -> (Session, Value) {
        let http = http();
        let resp = post_json(
            &http,
            &bridge.url(),
            None,
            &initialize_body(json!(1), version),
        )
        .await;
        assert_eq!(resp.status(), 200);
        let id = session_id(&resp);
        let body: Value = resp.json().await.unwrap();
        let session = Session {
            http,
            url: bridge.url(),
            id,
        };
        let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        assert_eq!(session.post(&note).await.status(), 202);
        (session, body)
    }

    /// POSTs `body` with this session's id.
    pub async fn post(&self, body: &Value) -> reqwest::Response {
        post_json(&self.http, &self.url, Some(&self.id), body).await
    }

    /// POSTs raw `body` with this session's id, the given `Content-Type` and extra `headers`.
    pub async fn post_raw(
        &self,
        content_type: &str,
        headers: &[(&str, &str)],
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        let mut req = self
            .http
            .post(&self.url)
            .header(CONTENT_TYPE, content_type)
            .header("mcp-session-id", &self.id);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.body(body)
            .send()
            .await
            .expect("POST reaches the bridge")
    }

    /// POSTs `raw` as it is (JSON text the test spells out byte for byte), accepting JSON or SSE.
    pub async fn post_text(&self, raw: impl Into<reqwest::Body>) -> reqwest::Response {
        self.post_raw(
            "application/json",
            &[("accept", "application/json, text/event-stream")],
            raw,
        )
        .await
    }

    /// Opens a GET stream with `accept`, returning the response.
    pub async fn get(&self, accept: &str) -> reqwest::Response {
        self.http
            .get(&self.url)
            .header("accept", accept)
            .header("mcp-session-id", &self.id)
            .send()
            .await
            .expect("GET reaches the bridge")
    }

    /// Sends `body` as a request in a background task.
    pub fn spawn_request(&self, body: Value) -> tokio::task::JoinHandle<Value> {
        let s = self.clone();
        tokio::spawn(async move { s.request(&body).await })
    }

    /// POSTs a request and returns its JSON-RPC response (asserting 200), whether the bridge
    /// answered with JSON or with an SSE stream (then the stream's response event).
    pub async fn request(&self, body: &Value) -> Value {
        let resp = self.post(body).await;
        assert_eq!(resp.status(), 200, "request {body}");
        response_of(resp).await.1
    }
}

/// The `Mcp-Session-Id` of a response (panics when it has none).
pub fn session_id(resp: &reqwest::Response) -> String {
    resp.headers()["mcp-session-id"]
        .to_str()
        .expect("a visible-ASCII session id")
        .to_string()
}

/// POSTs `body` as JSON with the headers a spec-following client sends.
pub async fn post_json(
    http: &reqwest::Client,
    url: &str,
    session: Option<&str>,
    body: &Value,
) -> reqwest::Response {
    let mut req = http
        .post(url)
        .header(CONTENT_TYPE, "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(serde_json::to_vec(body).unwrap());
    if let Some(id) = session {
        req = req.header("mcp-session-id", id);
    }
    req.send().await.expect("POST reaches the bridge")
}

/// Reads a request's answer: `(events before the response, the response)`. For a JSON answer
/// the event list is empty.
pub async fn response_of(resp: reqwest::Response) -> (Vec<Value>, Value) {
    let sse = resp
        .headers()
        .get("content-type")
        .is_some_and(|v| v.to_str().unwrap().starts_with("text/event-stream"));
    let text = resp.text().await.expect("body");
    if !sse {
        return (
            Vec::new(),
            serde_json::from_str(&text).expect("JSON response"),
        );
    }
    let mut events = sse_messages(&text);
    let last = events.pop().expect("an SSE answer ends with the response");
    assert!(
        last.get("result").is_some() || last.get("error").is_some(),
        "last event is the response: {last}"
    );
    (events, last)
}

/// The JSON messages of the `message` events in SSE text (comments and other events skipped).
pub fn sse_messages(text: &str) -> Vec<Value> {
    text.split("\n\n")
        .filter(|e| !e.starts_with(':'))
        .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
        .filter(|d| !d.is_empty())
        .map(|d| serde_json::from_str(d).expect("SSE data is JSON"))
        .collect()
}

/// The pid of the child serving `s` (the echo child's `pid` tool).
pub async fn child_pid(s: &Session) -> u32 {
    tool_text(&s.request(&tool_call(json!("pid"), "pid", json!({}))).await)
        .parse()
        .unwrap()
}

/// GETs `path` on the bridge and parses the JSON body.
pub async fn get_json(bridge: &Bridge, path: &str) -> Value {
    http()
        .get(bridge.at(path))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The bridge's `/metrics` text.
pub async fn metrics_text(bridge: &Bridge) -> String {
    http()
        .get(bridge.at("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The text of the first content item of a `tools/call` response.
pub fn tool_text(response: &Value) -> &str {
    response["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text in {response}"))
}

/// `tests/interop`, where `scripts/setup-interop` installs the pinned peers.
pub fn interop_dir() -> PathBuf {
    repo_root().join("tests/interop")
}

/// The command line of `@modelcontextprotocol/server-everything` in stdio mode.
pub fn everything_child() -> Vec<String> {
    let entry =
        interop_dir().join("node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    assert!(
        entry.exists(),
        "{} is missing: run scripts/setup-interop first",
        entry.display()
    );
    vec!["node".into(), entry.display().to_string(), "stdio".into()]
}

/// Runs an interop client script from `tests/interop` with `args` (each script has its own
/// 30 s timeout; this waits at most 90 s) and returns its JSON summary line, failing with its
/// stderr otherwise.
pub async fn run_client(program: PathBuf, script: &str, args: &[&str]) -> Value {
    run_client_env(program, script, args, &[]).await
}

/// Like [`run_client`], with `env` added to the client's environment.
pub async fn run_client_env(
    program: PathBuf,
    script: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> Value {
    assert!(
        program.exists() || program.components().count() == 1,
        "{} is missing: run scripts/setup-interop first",
        program.display()
    );
    let script = interop_dir().join(script);
    let out = tokio::time::timeout(
        Duration::from_secs(90),
        tokio::process::Command::new(&program)
            .arg(&script)
            .args(args)
            .env("NO_PROXY", "127.0.0.1,localhost")
            .envs(env.iter().copied())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("client finishes within 90 s")
    .expect("client starts");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{} {args:?} failed: {stderr}\n{stdout}",
        script.display()
    );
    serde_json::from_str(stdout.lines().last().unwrap_or("")).expect("summary line is JSON")
}

/// Polls `check` every 50 ms for up to 5 s; true once it holds.
pub async fn eventually(mut check: impl FnMut() -> bool) -> bool {
    for _ in 0..100 {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Runs curl with `args` (plus `-s -i`); returns the status (0 when there is no HTTP answer),
/// the response head in lowercase and the body.
pub fn curl(args: &[&str]) -> (u16, String, String) {
    let out = Command::new("curl")
        .args(["-s", "-i", "--max-time", "10"])
        .args(args)
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_ascii_lowercase(), body.to_string())
}

/// POSTs an `initialize` (2025-11-25) to `url` with curl and the extra `headers` (`"name:
/// value"`); returns what [`curl`] returns.
pub fn curl_initialize(url: &str, headers: &[&str]) -> (u16, String, String) {
    let body = initialize_body(json!(1), "2025-11-25").to_string();
    let mut args = vec![
        "-H",
        "content-type: application/json",
        "-H",
        "accept: application/json, text/event-stream",
        "-d",
        &body,
    ];
    for h in headers {
        args.extend(["-H", h]);
    }
    args.push(url);
    curl(&args)
}

/// A fresh directory under the system temp dir; removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    /// Creates `mcp-bridge-NAME-PID-NANOS`.
    pub fn new(name: &str) -> Scratch {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let dir =
            std::env::temp_dir().join(format!("mcp-bridge-{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    /// The path of `file` in the directory.
    pub fn file(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `openssl ARGS` in `dir`, failing the test with openssl's stderr when it fails.
pub fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl (Debian package openssl) runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
