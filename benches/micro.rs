//! Criterion micro-benchmarks of mcp-bridge's per-message hot path: the CPU the bridge spends on
//! the bytes of every request and response, without any I/O, task switching or HTTP.
//!
//! Run all of them with `cargo bench --bench micro`, a fast pass with
//! `cargo bench --bench micro -- --quick`, and one group with e.g.
//! `cargo bench --bench micro -- id_rewrite` (the argument is a regex over benchmark names).
//! Default timing is shortened (0.5 s warm-up, 2 s measurement per benchmark); override it with
//! criterion's `--warm-up-time` and `--measurement-time`.
//!
//! Payloads are realistic MCP traffic: a `tools/call` request with a small `arguments` object, and
//! its response with a ~200-byte `result` (`content[0].text`) or a 16 KiB one (a text with escaped
//! newlines and quotes) to show how costs scale with size. The sizes are printed when the
//! benchmarks start.
//!
//! Groups (each mirrors what the daemon does for each message; see the source named):
//!
//! - `framing`: [`LineCodec`] splitting the child's stdout into lines
//!   (`jsonrpc/codec.rs`, driven by `FramedRead` in `router/mod.rs`). `64_lines/*` decodes one
//!   read holding 64 newline-delimited responses (buffer refill excluded from the timing);
//!   `split_line/*` feeds one response in two reads cut in the middle, `whole_line/*` in one read
//!   (the copy of the read into the codec buffer is included in both).
//! - `envelope`: [`Message::parse`] of a request and of small and 16 KiB responses. `params` and
//!   `result` stay raw JSON (`RawValue`): they are validated and copied, never built into a tree.
//!   `value_baseline/*` parses the same bytes into a `serde_json::Value` for comparison.
//! - `id_rewrite`: parse + [`Message::to_json_with_id`], the id rewrite done for every request
//!   going to the child (client id replaced by a numeric upstream id, `router/requests.rs`
//!   `forward_request`) and every response going back (upstream id replaced by the client's id,
//!   number or string, `Router::finish`). `serialize_only/*` is the re-serialization alone.
//! - `routing`: [`IdMap`] round trip with N requests already in flight spread over up to 256
//!   sessions (N = 1, 1 000, 100 000): the duplicate check (`upstream_of`) and `allocate` of
//!   `forward_request`, then the `resolve` of `handle_response` (`router/child_side.rs`). The
//!   entry payload is an 80-byte stand-in for the router's `Pending` (reply sender, stream,
//!   progress token, post-processing).
//! - `sse`: [`message_event`] encoding of small and 16 KiB responses, [`message_payload`]
//!   (zero-copy slice used by the WebSocket transport), and [`EventLog::push`] of an event onto a
//!   Streamable HTTP stream (with `id:` lines, a replay buffer of the default 1 000 events and a
//!   connected reader whose outbox is drained) or onto a stream without ids (legacy SSE,
//!   WebSocket). `post_stream_*` is the per-request cost of a POST's stream apart from its
//!   events: opened and closed unused (`unused`), or also kept for resumption next to the 16
//!   streams a session keeps (`kept`).
//! - `per_request`: the whole per-request byte work chained, one request per iteration:
//!   client request parsed (POST body) → duplicate check, params scan, id allocated, id rewritten,
//!   framed as a stdin line → child's response line decoded, parsed, routed, id rewritten back →
//!   answer body. `json/*` is a plain JSON answer (`--response-mode json`, or a method that does
//!   not stream); `auto_json/*` the default for `tools/call` when the client accepts SSE and the
//!   response arrives within the hold (a POST stream log is opened and closed unused);
//!   `sse/*` the answer as an SSE stream (event encoded, pushed with an id, stream finished and
//!   kept for resumption, priming event, reader drained). The throughput figure is requests per
//!   second on one core. Excluded: sockets and pipes, hyper, channels between tasks and timers;
//!   the child's response is prepared outside the timing in a fresh read buffer.
//!
//! Two helpers below (`frame_line`, `needs_params`) copy private router code
//! (`Router::write_line` without the channel send, and the checks of `parse_params_if_needed`);
//! keep them in step with `src/router/requests.rs`.

use bytes::{BufMut, Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use mcp_bridge::cli::{DEFAULT_MAX_LINE_BYTES, DEFAULT_REPLAY_BUFFER, DEFAULT_SESSION_OUTBOX};
use mcp_bridge::jsonrpc::codec::{Frame, LineCodec};
use mcp_bridge::jsonrpc::{Kind, Message, RequestId};
use mcp_bridge::router::idmap::{IdMap, UpstreamId};
use mcp_bridge::session::replay::{EventLog, Push, StreamSet};
use mcp_bridge::session::SessionKey;
use mcp_bridge::transport::sse::{message_event, message_payload};
use serde_json::json;
use std::hint::black_box;
use std::time::Duration;
use tokio_util::codec::Decoder;

// ---------------------------------------------------------------------------------------------
// Payloads
// ---------------------------------------------------------------------------------------------

/// The client's `tools/call` request, as a POST body, with a numeric client id.
const REQUEST: &str = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"search_docs","arguments":{"query":"tokio select cancellation safety","limit":5,"include_snippets":true}}}"#;

/// The same request with a string (UUID) client id.
const REQUEST_STRING_ID: &str = r#"{"jsonrpc":"2.0","id":"5f0c6c1e-8d1b-4c4e-9a57-2f3b1d0e7a91","method":"tools/call","params":{"name":"search_docs","arguments":{"query":"tokio select cancellation safety","limit":5,"include_snippets":true}}}"#;

/// A string client id as some clients send them (UUIDs).
const STRING_ID: &str = "5f0c6c1e-8d1b-4c4e-9a57-2f3b1d0e7a91";

/// An upstream id as the child sees it after a while of traffic.
const UPSTREAM: UpstreamId = UpstreamId(1_234_567);

/// Retry hint of the priming event (`transport::streamable_http::get::RETRY_MS`, crate-private).
const RETRY_MS: u64 = 1000;

/// The session sending the measured request.
const SESSION: SessionKey = SessionKey(1);

/// A `tools/call` result whose serialized JSON is at least `min_len` bytes (and at most a word
/// more): one text content item. Its text is lines of source code, so a large one carries many
/// escaped newlines and quotes.
fn tool_result(min_len: usize) -> String {
    const WORDS: &str = "let reply = router.call(session, msg, Duration::from_secs(60), \
                         \"stream\").await?; // see src/router/mod.rs:412 \n";
    let mut text = String::from("Found 3 matches for \"tokio select\":");
    for word in WORDS.split(' ').cycle() {
        let result = json!({
            "content": [{ "type": "text", "text": text }],
            "isError": false,
        });
        let out = serde_json::to_string(&result).expect("serializes");
        if out.len() >= min_len {
            return out;
        }
        text.push(' ');
        text.push_str(word);
    }
    unreachable!("the word list cycles forever")
}

/// The child's response line (without `\n`) for upstream id `id`.
fn response_line(id: u64, result: &str) -> Vec<u8> {
    format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{result}}}"#).into_bytes()
}

/// The two result sizes every size-dependent benchmark runs with.
struct Sizes {
    small: String,
    large: String,
}

impl Sizes {
    fn new() -> Sizes {
        Sizes {
            small: tool_result(200),
            large: tool_result(16 * 1024),
        }
    }

    /// `("small", result)` and `("16k", result)`.
    fn each(&self) -> [(&'static str, &str); 2] {
        [("small", &self.small), ("16k", &self.large)]
    }
}

/// Shortened default timing so a full run stays short; the command line overrides it.
fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50)
}

// ---------------------------------------------------------------------------------------------
// Copies of private router code (keep in step with src/router/requests.rs)
// ---------------------------------------------------------------------------------------------

/// `Router::write_line` without the send: one message as one stdin line.
fn frame_line(mut line: Vec<u8>) -> Bytes {
    for b in line.iter_mut() {
        if *b == b'\n' || *b == b'\r' {
            *b = b' ';
        }
    }
    line.push(b'\n');
    Bytes::from(line)
}

/// The checks of `parse_params_if_needed`: whether the router must parse `params` into a
/// `Value` (progress token, task, methods it handles itself). False for the benchmark request.
fn needs_params(msg: &Message) -> bool {
    let Some(raw) = msg.params.as_deref().map(|p| p.get()) else {
        return false;
    };
    let method = msg.method();
    raw.contains("progressToken")
        || raw.contains("\"task\"")
        || method == "resources/subscribe"
        || method == "resources/unsubscribe"
        || method.starts_with("tasks/")
        || method == "logging/setLevel"
}

// ---------------------------------------------------------------------------------------------
// framing
// ---------------------------------------------------------------------------------------------

fn framing(c: &mut Criterion) {
    let sizes = Sizes::new();
    let mut g = c.benchmark_group("framing");
    for (name, result) in sizes.each() {
        let mut line = response_line(UPSTREAM.0, result);
        line.push(b'\n');

        // One read holding 64 lines; refilling the buffer is setup, not timed.
        let read = line.repeat(64);
        let mut codec = LineCodec::new(DEFAULT_MAX_LINE_BYTES);
        let mut check = BytesMut::from(&read[..]);
        let lines = std::iter::from_fn(|| codec.decode(&mut check).expect("never fails")).count();
        assert_eq!(lines, 64);
        let batch = if name == "small" { 64 } else { 4 };
        g.throughput(Throughput::Bytes(read.len() as u64));
        g.bench_function(BenchmarkId::new("64_lines", name), |b| {
            b.iter_batched_ref(
                || BytesMut::from(&read[..]),
                |buf| {
                    let mut n = 0usize;
                    while let Some(frame) = codec.decode(buf).expect("never fails") {
                        black_box(&frame);
                        n += 1;
                    }
                    n
                },
                BatchSize::NumIterations(batch),
            )
        });

        // One line arriving in two reads, then in one; the copy into the buffer is the read's.
        let (first, second) = line.split_at(line.len() / 2);
        g.throughput(Throughput::Bytes(line.len() as u64));
        g.bench_function(BenchmarkId::new("split_line", name), |b| {
            let mut buf = BytesMut::with_capacity(8 * 1024);
            b.iter(|| {
                buf.extend_from_slice(first);
                let none = codec.decode(&mut buf).expect("never fails");
                debug_assert!(none.is_none());
                buf.extend_from_slice(second);
                let frame = codec.decode(&mut buf).expect("never fails");
                debug_assert!(matches!(frame, Some(Frame::Line(_))));
                black_box(frame)
            })
        });
        g.bench_function(BenchmarkId::new("whole_line", name), |b| {
            let mut buf = BytesMut::with_capacity(8 * 1024);
            b.iter(|| {
                buf.extend_from_slice(&line);
                black_box(codec.decode(&mut buf).expect("never fails"))
            })
        });
    }
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// envelope
// ---------------------------------------------------------------------------------------------

fn envelope(c: &mut Criterion) {
    let sizes = Sizes::new();
    let small = response_line(UPSTREAM.0, &sizes.small);
    let large = response_line(UPSTREAM.0, &sizes.large);
    let inputs: [(&str, &[u8]); 3] = [
        ("request", REQUEST.as_bytes()),
        ("response_small", &small),
        ("response_16k", &large),
    ];
    let mut g = c.benchmark_group("envelope");
    for (name, bytes) in inputs {
        let msg = Message::parse(bytes).expect("valid message");
        assert!(msg.kind().is_ok());
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_with_input(BenchmarkId::new("parse", name), bytes, |b, bytes| {
            b.iter(|| Message::parse(black_box(bytes)).expect("valid message"))
        });
    }
    for (name, bytes) in [("response_small", &small), ("response_16k", &large)] {
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_with_input(
            BenchmarkId::new("value_baseline", name),
            bytes,
            |b, bytes| {
                b.iter(|| {
                    serde_json::from_slice::<serde_json::Value>(black_box(bytes))
                        .expect("valid JSON")
                })
            },
        );
    }
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// id_rewrite
// ---------------------------------------------------------------------------------------------

fn id_rewrite(c: &mut Criterion) {
    let sizes = Sizes::new();
    let number = RequestId::Number(7);
    let string = RequestId::String(STRING_ID.into());

    // Sanity: the rewrite keeps the raw members and the id's JSON type.
    let out = Message::parse(REQUEST.as_bytes())
        .expect("valid")
        .to_json_with_id(Some(&UPSTREAM));
    assert_eq!(
        String::from_utf8(out).expect("utf-8"),
        REQUEST.replace(r#""id":7"#, &format!(r#""id":{}"#, UPSTREAM.0))
    );
    let back = Message::parse(&response_line(UPSTREAM.0, &sizes.small))
        .expect("valid")
        .to_json_with_id(Some(&string));
    assert!(String::from_utf8(back)
        .expect("utf-8")
        .starts_with(&format!(
            r#"{{"jsonrpc":"2.0","id":"{STRING_ID}","result":"#
        )));

    let mut g = c.benchmark_group("id_rewrite");
    for (name, body) in [("number_id", REQUEST), ("string_id", REQUEST_STRING_ID)] {
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_function(BenchmarkId::new("request_to_child", name), |b| {
            b.iter(|| {
                let msg = Message::parse(black_box(body.as_bytes())).expect("valid");
                msg.to_json_with_id(Some(black_box(&UPSTREAM)))
            })
        });
    }
    for (size, result) in sizes.each() {
        let line = response_line(UPSTREAM.0, result);
        g.throughput(Throughput::Bytes(line.len() as u64));
        for (name, id) in [("number_id", &number), ("string_id", &string)] {
            let id_name = format!("{name}/{size}");
            g.bench_function(BenchmarkId::new("response_to_client", &id_name), |b| {
                b.iter(|| {
                    let msg = Message::parse(black_box(&line)).expect("valid");
                    msg.to_json_with_id(Some(black_box(id)))
                })
            });
        }
        let msg = Message::parse(&line).expect("valid");
        g.bench_function(BenchmarkId::new("serialize_only", size), |b| {
            b.iter(|| black_box(&msg).to_json_with_id(Some(black_box(&number))))
        });
    }
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// routing
// ---------------------------------------------------------------------------------------------

/// Stand-in for the router's `Pending` entry payload (about 80 bytes).
type Pending = [u64; 10];

/// A client id of either JSON type; string ids are UUID-shaped.
fn client_id(n: u64, string: bool) -> RequestId {
    if string {
        RequestId::String(format!("{:08x}-0000-4000-8000-{n:012x}", n >> 16))
    } else {
        RequestId::Number(n as i64)
    }
}

/// A map with `n` requests in flight spread round-robin over up to 256 sessions (keys 1..=256),
/// each session numbering its own ids from 1.
fn in_flight(n: u64, string: bool) -> IdMap<Pending> {
    let sessions = n.clamp(1, 256);
    let mut map = IdMap::new();
    for i in 0..n {
        let session = SessionKey(1 + i % sessions);
        map.allocate(session, client_id(1 + i / sessions, string), [0; 10])
            .expect("unique ids");
    }
    map
}

fn routing(c: &mut Criterion) {
    let mut g = c.benchmark_group("routing");
    for string in [false, true] {
        let kind = if string { "string_id" } else { "number_id" };
        for n in [1u64, 1_000, 100_000] {
            let mut map = in_flight(n, string);
            // A fresh id of session 1 (beyond the ids it has in flight); the id comes owned, as
            // from `Message::parse`, so making it is setup.
            let id = client_id(u64::MAX >> 2, string);
            assert!(map.upstream_of(SESSION, &id).is_none());
            g.bench_function(
                BenchmarkId::new(format!("allocate_resolve/{kind}"), n),
                |b| {
                    b.iter_batched(
                        || id.clone(),
                        |id| {
                            // forward_request: duplicate check, then allocate.
                            let dup = map.upstream_of(SESSION, &id);
                            debug_assert!(dup.is_none());
                            let up = map.allocate(SESSION, id, [0; 10]).expect("not in flight");
                            // handle_response: the child answered `up`.
                            map.resolve(black_box(up)).expect("in flight")
                        },
                        BatchSize::SmallInput,
                    )
                },
            );
            assert_eq!(map.len() as u64, n);
        }
    }
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// sse
// ---------------------------------------------------------------------------------------------

fn sse(c: &mut Criterion) {
    let sizes = Sizes::new();
    let mut g = c.benchmark_group("sse");
    for (size, result) in sizes.each() {
        let json = response_line(7, result);
        g.throughput(Throughput::Bytes(json.len() as u64));
        g.bench_function(BenchmarkId::new("message_event", size), |b| {
            b.iter(|| message_event(black_box(&json)))
        });

        let event = message_event(&json);
        // A Streamable HTTP stream: ids, default replay buffer, a reader that keeps up.
        let log = EventLog::new(3, DEFAULT_REPLAY_BUFFER, true);
        let (_, mut rx) = log.attach(None, DEFAULT_SESSION_OUTBOX).expect("new log");
        assert_eq!(log.push(&event), Push::Sent);
        assert!(rx
            .try_recv()
            .expect("sent")
            .starts_with(b"id: 3-1\nevent: message\n"));
        g.bench_function(BenchmarkId::new("push_with_ids", size), |b| {
            b.iter(|| {
                let pushed = log.push(black_box(&event));
                debug_assert_eq!(pushed, Push::Sent);
                rx.try_recv().expect("sent")
            })
        });
    }

    // Size-independent: no copy, no scan of the payload.
    let event = message_event(&response_line(7, &sizes.small));
    g.throughput(Throughput::Elements(1));
    g.bench_function("message_payload", |b| {
        b.iter(|| message_payload(black_box(&event)))
    });
    // Legacy SSE / WebSocket: no ids, nothing kept; the reader gets the same `Bytes`.
    let log = EventLog::new(0, 0, false);
    let (_, mut rx) = log.attach(None, DEFAULT_SESSION_OUTBOX).expect("new log");
    g.bench_function("push_no_ids", |b| {
        b.iter(|| {
            let pushed = log.push(black_box(&event));
            debug_assert_eq!(pushed, Push::Sent);
            rx.try_recv().expect("sent")
        })
    });

    // The per-request cost of a POST stream, apart from its events: opened (log and reader
    // channel) and closed unused, as for a `tools/call` answered with JSON in auto mode; and
    // opened, closed and kept for resumption with the session's 16 kept streams already there,
    // as for one answered with SSE.
    let streams = StreamSet::new(DEFAULT_REPLAY_BUFFER, true, DEFAULT_SESSION_OUTBOX);
    g.bench_function("post_stream_unused", |b| {
        b.iter(|| {
            let (log, rx) = streams.open_post();
            drop(rx);
            log.finish();
            log
        })
    });
    g.bench_function("post_stream_kept", |b| {
        b.iter(|| {
            let (log, rx) = streams.open_post();
            log.finish();
            streams.keep_post(log);
            rx
        })
    });
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// per_request
// ---------------------------------------------------------------------------------------------

/// How the POST is answered.
#[derive(Clone, Copy)]
enum Answer {
    /// `application/json` without a stream (`post.rs` `call`).
    Json,
    /// JSON after holding a POST stream open (`stream.rs` `answer_call`, `json_ok`).
    AutoJson,
    /// A complete SSE stream (`stream.rs` `answer_call` then `start_stream`).
    Sse,
}

/// The bridge-side state one request touches.
struct Bridge {
    map: IdMap<Pending>,
    codec: LineCodec,
    /// The session's streams (Streamable HTTP: ids and replay).
    streams: StreamSet,
}

/// What one request produced: the stdin line and the answer (body or SSE events).
type Produced = (Bytes, Vec<Bytes>);

impl Bridge {
    fn new() -> Bridge {
        Bridge {
            map: IdMap::new(),
            codec: LineCodec::new(DEFAULT_MAX_LINE_BYTES),
            streams: StreamSet::new(DEFAULT_REPLAY_BUFFER, true, DEFAULT_SESSION_OUTBOX),
        }
    }

    /// POST body → line for the child's stdin (`post.rs` `handle`, `Router::forward_request`).
    fn client_to_child(&mut self, body: &[u8]) -> Bytes {
        let msg = Message::parse(body).expect("valid request");
        let id = msg.request_id().cloned().expect("a request");
        let dup = self.map.upstream_of(SESSION, &id);
        debug_assert!(dup.is_none());
        let needs = needs_params(&msg);
        debug_assert!(!needs);
        let up = self.map.allocate(SESSION, id, [0; 10]).expect("unique");
        frame_line(msg.to_json_with_id(Some(&up)))
    }

    /// The child's stdout read → response body for the client (`Router::handle_frame`,
    /// `handle_response`, `finish`).
    fn child_to_client(&mut self, read: &mut BytesMut) -> Bytes {
        let Some(Frame::Line(line)) = self.codec.decode(read).expect("never fails") else {
            unreachable!("one whole line was read");
        };
        if line.iter().all(u8::is_ascii_whitespace) {
            unreachable!("not an empty line");
        }
        let msg = Message::parse(&line).expect("valid response");
        debug_assert_eq!(msg.kind(), Ok(Kind::Response));
        let up = match msg.request_id() {
            Some(RequestId::Number(n)) if *n > 0 => UpstreamId(*n as u64),
            _ => unreachable!("the bridge's own id"),
        };
        let entry = self.map.resolve(up).expect("in flight");
        Bytes::from(msg.to_json_with_id(Some(&entry.client_id)))
    }

    /// The whole request; `read` is the child's response as it would be read from its stdout.
    fn request(&mut self, body: &[u8], read: &mut BytesMut, answer: Answer) -> Produced {
        let stream = match answer {
            Answer::Json => None,
            Answer::AutoJson | Answer::Sse => Some(self.streams.open_post()),
        };
        let stdin = self.client_to_child(body);
        let response = self.child_to_client(read);
        let out = match (answer, stream) {
            (Answer::AutoJson, Some((log, rx))) => {
                drop(rx);
                log.finish();
                vec![response]
            }
            (Answer::Sse, Some((log, mut rx))) => {
                log.push(&message_event(&response));
                log.finish();
                self.streams.keep_post(log.clone());
                let mut events = vec![log.priming(RETRY_MS)];
                while let Ok(event) = rx.try_recv() {
                    events.push(event);
                }
                events
            }
            _ => vec![response],
        };
        (stdin, out)
    }
}

fn per_request(c: &mut Criterion) {
    let sizes = Sizes::new();

    // Sanity: one request through the chain restores the client's id.
    for answer in [Answer::Json, Answer::AutoJson, Answer::Sse] {
        let mut bridge = Bridge::new();
        let mut read = BytesMut::from(&response_line(1, &sizes.small)[..]);
        read.put_u8(b'\n');
        let (stdin, out) = bridge.request(REQUEST.as_bytes(), &mut read, answer);
        assert!(stdin.starts_with(br#"{"jsonrpc":"2.0","id":1,"method":"tools/call""#));
        assert!(stdin.ends_with(b"}\n"));
        let body = out.last().expect("answered");
        let expected = format!(r#"{{"jsonrpc":"2.0","id":7,"result":{}}}"#, sizes.small);
        if matches!(answer, Answer::Sse) {
            assert!(body.starts_with(b"id: 0-1\nevent: message\n"));
            assert!(body.ends_with(format!("data: {expected}\n\n").as_bytes()));
        } else {
            assert_eq!(&body[..], expected.as_bytes());
        }
        assert!(bridge.map.is_empty());
    }

    let mut g = c.benchmark_group("per_request");
    g.throughput(Throughput::Elements(1));
    for (size, result) in sizes.each() {
        for (name, answer) in [
            ("json", Answer::Json),
            ("auto_json", Answer::AutoJson),
            ("sse", Answer::Sse),
        ] {
            let mut bridge = Bridge::new();
            // Upstream ids are allocated 1, 2, 3, ... one per request, so the setup (the child
            // answering, and the read into a fresh buffer) knows which id the request will get.
            let mut next_up = 1u64;
            let (prefix, suffix) = {
                let line = response_line(0, result);
                let at = br#"{"jsonrpc":"2.0","id":"#.len();
                (line[..at].to_vec(), line[at + 1..].to_vec())
            };
            g.bench_function(BenchmarkId::new(name, size), |b| {
                b.iter_batched(
                    || {
                        let id = next_up.to_string();
                        next_up += 1;
                        let mut read =
                            BytesMut::with_capacity(prefix.len() + id.len() + suffix.len() + 1);
                        read.put_slice(&prefix);
                        read.put_slice(id.as_bytes());
                        read.put_slice(&suffix);
                        read.put_u8(b'\n');
                        read
                    },
                    |mut read| bridge.request(black_box(REQUEST.as_bytes()), &mut read, answer),
                    BatchSize::NumIterations(64),
                )
            });
            assert!(bridge.map.is_empty(), "every request was answered");
        }
    }
    g.finish();
}

/// Prints the payload sizes once, before the first benchmark.
fn payloads(_: &mut Criterion) {
    let sizes = Sizes::new();
    eprintln!(
        "payloads: request {} B; response line small {} B (result {} B), 16k {} B (result {} B)",
        REQUEST.len(),
        response_line(UPSTREAM.0, &sizes.small).len(),
        sizes.small.len(),
        response_line(UPSTREAM.0, &sizes.large).len(),
        sizes.large.len(),
    );
}

criterion_group! {
    name = benches;
    config = config();
    targets = payloads, framing, envelope, id_rewrite, routing, sse, per_request
}
criterion_main!(benches);
