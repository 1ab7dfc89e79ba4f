//! `echo_server`: a small, fast, synchronous MCP server speaking JSON-RPC 2.0
//! over stdio (one message per line), used as the child process in
//! mcp-bridge's tests and benchmarks.
//!
//! Run it with:
//!
//! ```text
//! cargo run --example echo_server -- [FLAGS]
//! ```
//!
//! It reads requests from stdin and writes responses to stdout. It answers
//! `initialize`, `ping`, `logging/setLevel`, `tools/list` and `tools/call`,
//! and `test/null-result` with `"result": null` (legal JSON-RPC, unusual in
//! MCP); other methods get `-32601 Method not found`. Notifications (including
//! `notifications/initialized` and `notifications/cancelled`) are never
//! answered. Response ids are the request ids, exactly as sent. A line that
//! is not JSON gets `-32700` (id `null`), JSON that is not an object gets
//! `-32600`, and messages from the client without a method are ignored.
//! Responses are written in order of completion and flushed before the server
//! waits for more input, so none is held back while stdin is idle.
//!
//! Tools: `echo {message: string}` (returns the message unchanged),
//! `add {a: number, b: number}`, `sleep {ms: integer}` (answered from its own
//! thread, so it never blocks other requests; with a progress token it first sends
//! `notifications/progress` 0 of 1), `env {name: string}` (the
//! variable's value or an empty string), `pid {}` and `notify {message}` (sends
//! a `notifications/message` carrying the message first) and `cancellations {}`
//! (how many `notifications/cancelled` named a running `sleep`; a cancelled
//! sleep ends without a response), `touch {uri}` (sends
//! `notifications/resources/updated` when `uri` was subscribed with
//! `resources/subscribe`) and `flood {count, size}` (writes `count` log
//! notifications of `size` bytes). An unknown tool gets
//! JSON-RPC error `-32602`; bad arguments get a result with `isError: true`.
//!
//! Flags, to provoke a bridge's error handling:
//!
//! - `--garbage`: print a non-JSON banner line, an empty line and a line of
//!   invalid UTF-8 at start, and `garbage after response` after every
//!   `tools/call` response.
//! - `--long-line BYTES`: print one line of BYTES `x` characters at start.
//! - `--exit-at-start CODE`: print `fatal: exiting at start` to stderr and
//!   exit with CODE at once.
//! - `--stderr-chatter`: print `echo-server: got METHOD` to stderr for every
//!   message received.
//! - `--exit-after N`: exit with code 3 once N responses have been written.
//!
//! Flag values may also be given as `--flag=VALUE`. At end of input the server
//! waits for in-flight `sleep` calls, writes their responses and exits 0.

use serde_json::{json, Value};
use std::collections::HashSet;
use std::fmt::Display;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Stdout, Write};
use std::process;
use std::str::FromStr;
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Duration;

/// Protocol versions this server accepts from `initialize`, newest first.
const SUPPORTED_VERSIONS: [&str; 4] = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

/// Size of the stdin and stdout buffers.
const BUFFER_SIZE: usize = 1 << 16;

/// Usage text printed for `--help` and after a bad argument.
const USAGE: &str = "usage: echo_server [--garbage] [--long-line BYTES] \
[--exit-at-start CODE] [--stderr-chatter] [--exit-after N]";

/// Options taken from the command line.
#[derive(Debug, Default)]
struct Config {
    /// `--garbage`: emit non-JSON lines at start and after tool calls.
    garbage: bool,
    /// `--long-line BYTES`: length of the line of `x` printed at start.
    long_line: Option<usize>,
    /// `--exit-at-start CODE`: exit with this code before doing anything.
    exit_at_start: Option<i32>,
    /// `--stderr-chatter`: log every received method to stderr.
    stderr_chatter: bool,
    /// `--exit-after N`: exit with code 3 after N responses.
    exit_after: Option<u64>,
}

/// Buffered stdout plus the response count for `--exit-after`.
struct Writer {
    /// Buffered stdout; flushed before the reader blocks and after `sleep`.
    stdout: BufWriter<Stdout>,
    /// Responses written so far.
    answered: u64,
    /// `--exit-after` limit.
    exit_after: Option<u64>,
}

impl Writer {
    /// Writes raw bytes, exiting if stdout is gone.
    fn write(&mut self, bytes: &[u8]) {
        self.stdout
            .write_all(bytes)
            .unwrap_or_else(|e| stdout_failed(e));
    }

    /// Writes one response line (and maybe a garbage line) and counts it.
    fn write_response(&mut self, response: &Value, garbage: bool) {
        serde_json::to_writer(&mut self.stdout, response).unwrap_or_else(|e| stdout_failed(e));
        self.write(b"\n");
        if garbage {
            self.write(b"garbage after response\n");
        }
        self.answered += 1;
        self.check_exit_after();
    }

    /// Flushes buffered output to stdout, exiting if stdout is gone.
    fn flush(&mut self) {
        self.stdout.flush().unwrap_or_else(|e| stdout_failed(e));
    }

    /// Flushes and exits with code 3 once the `--exit-after` limit is reached.
    fn check_exit_after(&mut self) {
        if self.exit_after.is_some_and(|limit| self.answered >= limit) {
            self.flush();
            process::exit(3);
        }
    }
}

/// Cloneable handle to stdout, shared by the main thread and `sleep` threads.
#[derive(Clone)]
struct Output {
    /// The one writer all threads share.
    writer: Arc<Mutex<Writer>>,
    /// Whether to append a garbage line after `tools/call` responses.
    garbage: bool,
    /// Never sent on: `main` waits until every clone is dropped.
    _alive: Sender<()>,
    /// Sleeps in progress and the cancellations seen for them.
    sleeps: Arc<Mutex<Sleeps>>,
}

/// Bookkeeping of `sleep` calls, so that cancellation is observable.
#[derive(Default)]
struct Sleeps {
    /// Ids (as JSON text) of sleeps still running.
    active: HashSet<String>,
    /// Ids of running sleeps the client cancelled: they end without a response.
    cancelled: HashSet<String>,
    /// How many `notifications/cancelled` named a running sleep.
    cancelled_count: u64,
    /// Resource URIs the client subscribed to.
    subscribed: HashSet<String>,
}

impl Output {
    /// Locks the shared writer (a panicked holder leaves it usable).
    fn lock(&self) -> MutexGuard<'_, Writer> {
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Locks the sleep bookkeeping.
    fn lock_sleeps(&self) -> MutexGuard<'_, Sleeps> {
        self.sleeps.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes a response; it is flushed before the reader next blocks.
    fn respond(&self, response: &Value, tool_call: bool) {
        self.lock()
            .write_response(response, tool_call && self.garbage);
    }

    /// Flushes buffered output.
    fn flush(&self) {
        self.lock().flush();
    }
}

/// A JSON-RPC error: code and message.
type RpcError = (i64, String);

/// Parses flags, then serves stdin until EOF and in-flight `sleep`s finish.
fn main() {
    let config = parse_args(std::env::args().skip(1)).unwrap_or_else(|msg| {
        eprintln!("echo-server: {msg}\n{USAGE}");
        process::exit(2)
    });
    if let Some(code) = config.exit_at_start {
        eprintln!("fatal: exiting at start");
        process::exit(code);
    }
    let (alive, all_done) = mpsc::channel::<()>();
    let writer = Writer {
        stdout: BufWriter::with_capacity(BUFFER_SIZE, io::stdout()),
        answered: 0,
        exit_after: config.exit_after,
    };
    let out = Output {
        writer: Arc::new(Mutex::new(writer)),
        garbage: config.garbage,
        _alive: alive,
        sleeps: Arc::default(),
    };
    write_preamble(&config, &out);
    serve(&config, &out);
    out.flush();
    drop(out);
    // Returns once every `sleep` thread has answered and dropped its clone.
    let _ = all_done.recv();
}

/// Parses the command line (without the program name) into a [`Config`].
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Config, String> {
    let mut config = Config::default();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_owned())),
            _ => (arg.as_str(), None),
        };
        let mut value = || inline.clone().or_else(|| args.next());
        match flag {
            "--garbage" => config.garbage = true,
            "--stderr-chatter" => config.stderr_chatter = true,
            "--long-line" => config.long_line = Some(flag_value(flag, value())?),
            "--exit-at-start" => config.exit_at_start = Some(flag_value(flag, value())?),
            "--exit-after" => config.exit_after = Some(flag_value(flag, value())?),
            "-h" | "--help" => {
                println!("{USAGE}");
                process::exit(0);
            }
            _ => return Err(format!("unknown argument: {arg}")),
        }
    }
    Ok(config)
}

/// Parses the value given for `flag`, failing if it is missing or malformed.
fn flag_value<T: FromStr>(flag: &str, value: Option<String>) -> Result<T, String> {
    let value = value.ok_or_else(|| format!("{flag} needs a value"))?;
    value
        .parse()
        .map_err(|_| format!("invalid value for {flag}: {value:?}"))
}

/// Writes the start-up lines asked for by `--garbage` and `--long-line`.
fn write_preamble(config: &Config, out: &Output) {
    let mut writer = out.lock();
    writer.check_exit_after();
    if config.garbage {
        writer.write(b"echo-server starting, this is not JSON\n");
        writer.write(b"\n");
        writer.write(&[0xff, 0xfe, b'\n']);
    }
    if let Some(len) = config.long_line {
        let mut line = vec![b'x'; len];
        line.push(b'\n');
        writer.write(&line);
    }
    writer.flush();
}

/// Reports a failed write to stdout (the reader went away) and exits.
fn stdout_failed(err: impl Display) -> ! {
    eprintln!("echo-server: cannot write to stdout: {err}");
    process::exit(1)
}

/// Reads stdin line by line until EOF and handles each line.
fn serve(config: &Config, out: &Output) {
    let mut stdin = BufReader::with_capacity(BUFFER_SIZE, io::stdin().lock());
    let mut line = Vec::with_capacity(1 << 12);
    loop {
        line.clear();
        match read_line(&mut stdin, &mut line, out) {
            Ok(0) => return,
            Ok(_) => handle_line(trim_line_end(&line), config, out),
            Err(err) => {
                eprintln!("echo-server: cannot read stdin: {err}");
                return;
            }
        }
    }
}

/// Appends one line (with its `\n`, if any) to `line`; returns its length.
///
/// Like `read_until`, except that it flushes `out` before every read that
/// may block, so responses never wait for more input to arrive.
fn read_line<R: Read>(
    stdin: &mut BufReader<R>,
    line: &mut Vec<u8>,
    out: &Output,
) -> io::Result<usize> {
    loop {
        if stdin.buffer().is_empty() {
            out.flush();
        }
        let available = match stdin.fill_buf() {
            Ok(available) => available,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        if available.is_empty() {
            return Ok(line.len());
        }
        let newline = available.iter().position(|&b| b == b'\n');
        let used = newline.map_or(available.len(), |i| i + 1);
        line.extend_from_slice(&available[..used]);
        stdin.consume(used);
        if newline.is_some() {
            return Ok(line.len());
        }
    }
}

/// Strips a trailing `\n` or `\r\n` from `line`.
fn trim_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Parses one input line and answers it if it is a request.
fn handle_line(line: &[u8], config: &Config, out: &Output) {
    if line.iter().all(u8::is_ascii_whitespace) {
        return;
    }
    let mut message = match serde_json::from_slice::<Value>(line) {
        Ok(Value::Object(message)) => message,
        Ok(_) => return out.respond(&invalid_request(Value::Null), false),
        Err(err) => {
            let error = (-32700, format!("Parse error: {err}"));
            return out.respond(&response(Value::Null, Err(error)), false);
        }
    };
    let id = message.remove("id");
    let Some(Value::String(method)) = message.remove("method") else {
        // Responses from the client are accepted silently.
        let is_response = message.contains_key("result") || message.contains_key("error");
        if let (Some(id), false) = (id, is_response) {
            out.respond(&invalid_request(id), false);
        }
        return;
    };
    if config.stderr_chatter {
        eprintln!("echo-server: got {method}");
    }
    // Notifications (no id) are never answered.
    match id {
        Some(id) => dispatch(id, &method, message.remove("params"), out),
        None if method == "notifications/cancelled" => note_cancel(message.get("params"), out),
        None => {}
    }
}

/// Answers one request, by method name.
fn dispatch(id: Value, method: &str, params: Option<Value>, out: &Output) {
    let result = match method {
        "initialize" => Ok(initialize_result(params.as_ref())),
        "ping" | "logging/setLevel" => Ok(json!({})),
        "test/null-result" => Ok(Value::Null),
        "tools/list" => Ok(tools_list()),
        "tools/call" => return call_tool(id, params, out),
        "resources/subscribe" | "resources/unsubscribe" => {
            subscription(method, params.as_ref(), out)
        }
        _ => Err((-32601, format!("Method not found: {method}"))),
    };
    out.respond(&response(id, result), false);
}

/// Records `resources/subscribe` / `resources/unsubscribe` of `params.uri`.
fn subscription(method: &str, params: Option<&Value>, out: &Output) -> Result<Value, RpcError> {
    let Some(uri) = params.and_then(|p| p.get("uri")).and_then(Value::as_str) else {
        return Err((-32602, "Invalid params: uri is required".to_owned()));
    };
    let mut sleeps = out.lock_sleeps();
    if method == "resources/subscribe" {
        sleeps.subscribed.insert(uri.to_owned());
    } else {
        sleeps.subscribed.remove(uri);
    }
    Ok(json!({}))
}

/// Builds a JSON-RPC response carrying either a result or an error.
fn response(id: Value, result: Result<Value, RpcError>) -> Value {
    let (key, payload) = match result {
        Ok(result) => ("result", result),
        Err((code, message)) => ("error", json!({"code": code, "message": message})),
    };
    object([("jsonrpc", "2.0".into()), ("id", id), (key, payload)])
}

/// Builds a JSON object from owned values (`json!` would clone them).
fn object<const N: usize>(fields: [(&str, Value); N]) -> Value {
    Value::Object(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

/// Builds the `-32600 Invalid Request` error response.
fn invalid_request(id: Value) -> Value {
    response(id, Err((-32600, "Invalid Request".to_owned())))
}

/// Builds the `initialize` result, echoing the client's version if supported.
fn initialize_result(params: Option<&Value>) -> Value {
    let requested = params
        .and_then(|p| p.get("protocolVersion"))
        .and_then(Value::as_str);
    let version = SUPPORTED_VERSIONS
        .into_iter()
        .find(|v| Some(*v) == requested)
        .unwrap_or(SUPPORTED_VERSIONS[0]);
    json!({
        "protocolVersion": version,
        "capabilities": {
            "tools": {"listChanged": true},
            "logging": {},
            "resources": {"subscribe": true},
        },
        "serverInfo": {"name": "echo-server", "version": env!("CARGO_PKG_VERSION")},
    })
}

/// Builds the `tools/list` result.
fn tools_list() -> Value {
    json!({"tools": [
        tool("echo", "Returns the message unchanged.", &json!({"message": {"type": "string"}})),
        tool(
            "add",
            "Returns a + b.",
            &json!({"a": {"type": "number"}, "b": {"type": "number"}}),
        ),
        tool(
            "sleep",
            "Sleeps for ms milliseconds, then returns \"slept N ms\".",
            &json!({"ms": {"type": "integer", "minimum": 0}}),
        ),
        tool(
            "env",
            "Returns the value of an environment variable, or \"\" if unset.",
            &json!({"name": {"type": "string"}}),
        ),
        tool("pid", "Returns the server's process id.", &json!({})),
        tool(
            "touch",
            "Sends notifications/resources/updated for uri if it is subscribed.",
            &json!({"uri": {"type": "string"}}),
        ),
        tool(
            "flood",
            "Writes count notifications/message of size bytes, then answers.",
            &json!({"count": {"type": "integer"}, "size": {"type": "integer"}}),
        ),
        tool(
            "cancellations",
            "Returns how many notifications/cancelled named a sleep still running.",
            &json!({}),
        ),
        tool(
            "notify",
            "Sends notifications/message carrying the message, then returns \"notified\".",
            &json!({"message": {"type": "string"}}),
        ),
    ]})
}

/// Describes one tool whose properties are all required.
fn tool(name: &str, description: &str, properties: &Value) -> Value {
    let required: Vec<&String> = properties
        .as_object()
        .map_or(Vec::new(), |p| p.keys().collect());
    json!({
        "name": name,
        "description": description,
        "inputSchema": {"type": "object", "properties": properties, "required": required},
    })
}

/// Answers `tools/call`; `sleep` is answered later from its own thread.
fn call_tool(id: Value, params: Option<Value>, out: &Output) {
    let token = params
        .as_ref()
        .and_then(|p| p.get("_meta"))
        .and_then(|m| m.get("progressToken"))
        .cloned();
    let (name, args) = match tool_name_and_args(params) {
        Ok(call) => call,
        Err(err) => return out.respond(&response(id, Err(err)), true),
    };
    if name == "sleep" {
        if let Some(ms) = args.get("ms").and_then(Value::as_u64) {
            if let Some(token) = token {
                send_progress(token, out);
            }
            return spawn_sleep(id, ms, out.clone());
        }
    }
    if name == "notify" {
        send_log_notification(&args, out);
    }
    if name == "touch" {
        return touch(id, &args, out);
    }
    if name == "flood" {
        return flood(id, &args, out);
    }
    if name == "cancellations" {
        let count = out.lock_sleeps().cancelled_count;
        return out.respond(&response(id, Ok(tool_result(Ok(count.to_string())))), true);
    }
    let result = match run_tool(&name, args) {
        Some(outcome) => Ok(tool_result(outcome)),
        None => Err((-32602, format!("Unknown tool: {name}"))),
    };
    out.respond(&response(id, result), true);
}

/// Writes a `notifications/message` (level info) whose data is the `message` argument.
fn send_log_notification(args: &Value, out: &Output) {
    let data = args.get("message").cloned().unwrap_or(Value::Null);
    let note = json!({
        "jsonrpc": "2.0",
        "method": "notifications/message",
        "params": {"level": "info", "logger": "echo-server", "data": data},
    });
    let mut writer = out.lock();
    serde_json::to_writer(&mut writer.stdout, &note).unwrap_or_else(|e| stdout_failed(e));
    writer.write(b"\n");
}

/// Takes the tool name and arguments out of `tools/call` params.
fn tool_name_and_args(params: Option<Value>) -> Result<(String, Value), RpcError> {
    let invalid = |what: &str| (-32602, format!("Invalid params: {what}"));
    let Some(Value::Object(mut params)) = params else {
        return Err(invalid("expected an object with a tool name"));
    };
    let Some(Value::String(name)) = params.remove("name") else {
        return Err(invalid("missing tool name"));
    };
    match params.remove("arguments") {
        None | Some(Value::Null) => Ok((name, json!({}))),
        Some(args @ Value::Object(_)) => Ok((name, args)),
        Some(_) => Err(invalid("arguments must be an object")),
    }
}

/// Runs a tool inline: `None` if unknown, else its text or an error text.
fn run_tool(name: &str, mut args: Value) -> Option<Result<String, String>> {
    let outcome = match name {
        "echo" => match args.get_mut("message").map(Value::take) {
            Some(Value::String(message)) => Ok(message),
            _ => Err("invalid arguments: message must be a string".to_owned()),
        },
        "add" => add(&args),
        "sleep" => Err("invalid arguments: ms must be a non-negative integer".to_owned()),
        "env" => match args.get("name").and_then(Value::as_str) {
            Some(name) => Ok(env_value(name)),
            None => Err("invalid arguments: name must be a string".to_owned()),
        },
        "pid" => Ok(process::id().to_string()),
        "notify" => Ok("notified".to_owned()),
        _ => return None,
    };
    Some(outcome)
}

/// The `add` tool: integer sum when both are integers, else a float sum.
fn add(args: &Value) -> Result<String, String> {
    let (Some(a), Some(b)) = (args.get("a"), args.get("b")) else {
        return Err("invalid arguments: a and b are required".to_owned());
    };
    if let Some(sum) = a
        .as_i64()
        .zip(b.as_i64())
        .and_then(|(a, b)| a.checked_add(b))
    {
        return Ok(sum.to_string());
    }
    match (a.as_f64(), b.as_f64()) {
        (Some(a), Some(b)) => Ok((a + b).to_string()),
        _ => Err("invalid arguments: a and b must be numbers".to_owned()),
    }
}

/// The `env` tool: the variable's value, or `""` if unset or not a valid name.
fn env_value(name: &str) -> String {
    if name.is_empty() || name.contains(['=', '\0']) {
        return String::new();
    }
    std::env::var_os(name).map_or_else(String::new, |v| v.to_string_lossy().into_owned())
}

/// Wraps a tool's outcome as a `tools/call` result with one text item.
fn tool_result(outcome: Result<String, String>) -> Value {
    let (text, is_error) = match outcome {
        Ok(text) => (text, false),
        Err(text) => (text, true),
    };
    let content = object([("type", "text".into()), ("text", text.into())]);
    object([
        ("content", Value::Array(vec![content])),
        ("isError", is_error.into()),
    ])
}

/// Answers a `sleep` call from a new thread once `ms` milliseconds have passed.
fn spawn_sleep(id: Value, ms: u64, out: Output) {
    out.lock_sleeps().active.insert(id.to_string());
    thread::spawn(move || {
        thread::sleep(Duration::from_millis(ms));
        let key = id.to_string();
        let cancelled = {
            let mut sleeps = out.lock_sleeps();
            sleeps.active.remove(&key);
            sleeps.cancelled.remove(&key)
        };
        if !cancelled {
            let result = tool_result(Ok(format!("slept {ms} ms")));
            out.respond(&response(id, Ok(result)), true);
            out.flush();
        }
    });
}

/// The `touch` tool: sends `notifications/resources/updated` for `uri` when it is subscribed.
fn touch(id: Value, args: &Value, out: &Output) {
    let uri = args
        .get("uri")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let subscribed = out.lock_sleeps().subscribed.contains(&uri);
    if subscribed {
        let note = json!({"jsonrpc": "2.0", "method": "notifications/resources/updated", "params": {"uri": uri}});
        let mut writer = out.lock();
        serde_json::to_writer(&mut writer.stdout, &note).unwrap_or_else(|e| stdout_failed(e));
        writer.write(b"\n");
    }
    let text = if subscribed {
        "updated"
    } else {
        "not subscribed"
    };
    out.respond(&response(id, Ok(tool_result(Ok(text.to_owned())))), true);
}

/// The `flood` tool: writes `count` `notifications/message` of `size` bytes, then answers.
fn flood(id: Value, args: &Value, out: &Output) {
    let count = args.get("count").and_then(Value::as_u64).unwrap_or(0);
    let size = args.get("size").and_then(Value::as_u64).unwrap_or(0) as usize;
    let data = "f".repeat(size);
    let note = json!({"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info", "data": data}});
    let line = serde_json::to_vec(&note).unwrap_or_default();
    for _ in 0..count {
        let mut writer = out.lock();
        writer.write(&line);
        writer.write(b"\n");
    }
    out.respond(
        &response(id, Ok(tool_result(Ok(format!("flooded {count}"))))),
        true,
    );
}

/// Writes and flushes `notifications/progress` (progress 0 of 1) for a sleep that starts.
fn send_progress(token: Value, out: &Output) {
    let note = json!({
        "jsonrpc": "2.0",
        "method": "notifications/progress",
        "params": {"progressToken": token, "progress": 0, "total": 1, "message": "sleeping"},
    });
    let mut writer = out.lock();
    serde_json::to_writer(&mut writer.stdout, &note).unwrap_or_else(|e| stdout_failed(e));
    writer.write(b"\n");
    writer.flush();
}

/// Records a `notifications/cancelled` that names a running sleep (which then gets no response).
fn note_cancel(params: Option<&Value>, out: &Output) {
    let Some(id) = params.and_then(|p| p.get("requestId")) else {
        return;
    };
    let key = id.to_string();
    let mut sleeps = out.lock_sleeps();
    if sleeps.active.contains(&key) && sleeps.cancelled.insert(key) {
        sleeps.cancelled_count += 1;
    }
}
