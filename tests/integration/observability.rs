//! Observability against real tools: a Prometheus server (Debian package) scraping the bridge's
//! `--admin-listen` endpoint every second and queried through its HTTP API, `promtool check
//! metrics` on a scrape, the JSON log lines, and the bound on metric cardinality.

use crate::support::*;
use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A Prometheus server on loopback scraping `target` every second; killed (by pid) on drop.
struct Prometheus {
    process: Child,
    url: String,
    _dir: Scratch,
}

impl Prometheus {
    fn start(target: &str) -> Prometheus {
        let dir = Scratch::new("prometheus");
        let config = dir.file("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: mcp-bridge\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let listen = format!("127.0.0.1:{}", free_port());
        let process = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.file("data").display()
            ))
            .arg(format!("--web.listen-address={listen}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus (Debian package prometheus) runs");
        Prometheus {
            process,
            url: format!("http://{listen}"),
            _dir: dir,
        }
    }

    /// The value of the instant query `promql` (its first series), if it has one yet.
    async fn query(&self, promql: &str) -> Option<f64> {
        let resp = http()
            .get(format!("{}/api/v1/query", self.url))
            .query(&[("query", promql)])
            .send()
            .await
            .ok()?;
        let body: Value = resp.json().await.ok()?;
        body["data"]["result"][0]["value"][1].as_str()?.parse().ok()
    }

    /// Polls `promql` until `check` holds for its value (at most 30 s); returns the last value.
    async fn wait_for(&self, promql: &str, check: impl Fn(f64) -> bool) -> f64 {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last = None;
        while Instant::now() < deadline {
            last = self.query(promql).await;
            if last.is_some_and(&check) {
                return last.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!("{promql}: last value {last:?} never matched");
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// The address of the `--admin-listen` listener, from the bridge's JSON log.
fn admin_addr(bridge: &Bridge) -> String {
    bridge
        .logs()
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["message"] == "admin listening (/metrics, /healthz, /readyz)")
        .and_then(|v| v["listen"].as_str().map(str::to_string))
        .expect("the admin listener is logged")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_admin_listener_and_sees_the_traffic_sent() {
    let bridge = Bridge::echo(&["--admin-listen", "127.0.0.1:0"], &[]).await;
    let admin = admin_addr(&bridge);
    let (status, _, _) = curl(&[&bridge.at("/metrics")]);
    assert_eq!(
        status, 404,
        "with --admin-listen, /metrics is only on the admin listener"
    );
    assert_eq!(curl(&[&format!("http://{admin}/readyz")]).0, 200);

    let (session, _) = Session::open(&bridge, "2025-11-25").await;
    for i in 0..25 {
        let answer = session
            .request(&tool_call(json!(i), "echo", json!({"message": "m"})))
            .await;
        assert!(answer.get("result").is_some(), "{answer}");
    }
    for i in 0..5 {
        let answer = session
            .request(&json!({"jsonrpc": "2.0", "id": 100 + i, "method": "x/not-a-method"}))
            .await;
        assert_eq!(answer["error"]["code"], -32601);
    }
    assert_eq!(
        curl_initialize(&bridge.url(), &["Host: evil.example"]).0,
        421
    );

    // promtool lints a scrape in the classic text format.
    let scrape = Command::new("curl")
        .args(["-s", &format!("http://{admin}/metrics")])
        .output()
        .unwrap()
        .stdout;
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus) runs");
    std::io::Write::write_all(promtool.stdin.as_mut().unwrap(), &scrape).unwrap();
    let lint = promtool.wait_with_output().unwrap();
    assert!(
        lint.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&lint.stdout),
        String::from_utf8_lossy(&lint.stderr)
    );

    let prometheus = Prometheus::start(&admin);
    let calls = prometheus
        .wait_for(
            r#"mcp_bridge_requests_total{method="tools/call",outcome="ok"}"#,
            |v| v >= 25.0,
        )
        .await;
    assert_eq!(calls, 25.0, "exactly the calls sent");
    let others = prometheus
        .wait_for(
            r#"mcp_bridge_requests_total{method="other",outcome="error"}"#,
            |v| v >= 5.0,
        )
        .await;
    assert_eq!(others, 5.0);
    let p50 = prometheus
        .wait_for(
            r#"histogram_quantile(0.5, sum by (le) (mcp_bridge_request_duration_seconds_bucket{method="tools/call"}))"#,
            |v| v > 0.0,
        )
        .await;
    assert!(p50 < 1.0, "echo calls take well under a second: {p50}");
    let count = prometheus
        .wait_for(
            r#"mcp_bridge_request_duration_seconds_count{method="tools/call"}"#,
            |v| v >= 25.0,
        )
        .await;
    assert_eq!(count, 25.0);
    // Each wait_for fails the test when its condition never holds.
    prometheus
        .wait_for("mcp_bridge_child_up", |v| v == 1.0)
        .await;
    prometheus
        .wait_for(
            r#"mcp_bridge_sessions_active{transport="streamable-http"}"#,
            |v| v == 1.0,
        )
        .await;
    assert_eq!(
        prometheus
            .wait_for(
                r#"mcp_bridge_rejected_requests_total{reason="host"}"#,
                |v| v >= 1.0
            )
            .await,
        1.0
    );
    let version = format!(
        r#"mcp_bridge_build_info{{version="{}"}}"#,
        env!("CARGO_PKG_VERSION")
    );
    prometheus.wait_for(&version, |v| v == 1.0).await;
    // Messages to the child: initialize and initialized from the bridge, the 30 requests.
    prometheus
        .wait_for(r#"mcp_bridge_messages_total{direction="to_child"}"#, |v| {
            v >= 30.0
        })
        .await;
}

#[tokio::test]
async fn json_logs_carry_session_request_and_child_fields() {
    let bridge = Bridge::echo(&[], &["--stderr-chatter"]).await;
    let (session, _) = Session::open(&bridge, "2025-11-25").await;
    let answer = session
        .request(&tool_call(
            json!("call-7"),
            "echo",
            json!({"message": "secret body"}),
        ))
        .await;
    assert!(answer.get("result").is_some());
    let finished = eventually(|| {
        bridge
            .logs()
            .iter()
            .any(|l| l.contains("request finished") && l.contains("call-7"))
    })
    .await;
    assert!(finished, "{}", bridge.logs().join("\n"));
    let lines: Vec<Value> = bridge
        .logs()
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    for line in &lines {
        for key in ["timestamp", "level", "target", "message"] {
            assert!(line.get(key).is_some(), "{key} missing: {line}");
        }
        assert!(
            !line.to_string().contains("secret body"),
            "message bodies are for trace only: {line}"
        );
    }
    let event = lines
        .iter()
        .find(|l| l["message"] == "request finished" && l["span"]["rpc.id"] == "\"call-7\"")
        .expect("the request's finish event");
    assert_eq!(event["level"], "DEBUG");
    assert_eq!(event["outcome"], "ok");
    assert!(
        event["duration_ms"].as_f64().is_some_and(|d| d >= 0.0),
        "{event}"
    );
    assert_eq!(event["span"]["name"], "request");
    assert_eq!(event["span"]["rpc.method"], "tools/call");
    let session_span = &event["spans"][0];
    assert_eq!(session_span["name"], "session");
    assert_eq!(session_span["session.id"], session.id.as_str());
    assert_eq!(session_span["transport"], "streamable-http");
    let stderr = lines
        .iter()
        .find(|l| l["target"] == "child::stderr")
        .expect("the child's stderr is logged");
    assert!(stderr["child.pid"].as_u64().is_some(), "{stderr}");

    // MCP_BRIDGE_LOG overrides --log-level (debug in Bridge::start).
    let quiet = Bridge::start_with_env(&[], &echo_child(&[]), &[("MCP_BRIDGE_LOG", "info")]);
    quiet.wait_ready().await;
    let (s, _) = Session::open(&quiet, "2025-11-25").await;
    s.request(&tool_call(json!(1), "echo", json!({"message": "x"})))
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        quiet.logs().iter().all(|l| !l.contains("\"DEBUG\"")),
        "{}",
        quiet.logs().join("\n")
    );
}

#[tokio::test]
async fn a_thousand_unknown_methods_add_no_series() {
    let bridge = Bridge::echo(&[], &[]).await;
    let (session, _) = Session::open(&bridge, "2025-11-25").await;
    let before = metrics_text(&bridge).await.lines().count();
    for i in 0..1000 {
        let answer = session
            .request(&json!({"jsonrpc": "2.0", "id": i, "method": format!("x/method-{i}")}))
            .await;
        assert_eq!(answer["error"]["code"], -32601);
    }
    let text = metrics_text(&bridge).await;
    assert!(
        !text.contains("x/method-"),
        "method names never become labels"
    );
    assert!(
        text.contains("mcp_bridge_requests_total{method=\"other\",outcome=\"error\"} 1000"),
        "{text}"
    );
    // Every metric README lists is served, and every served metric is listed.
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let listed: Vec<&str> = readme
        .lines()
        .filter_map(|l| l.strip_prefix("| `mcp_bridge_"))
        .filter_map(|l| l.split('`').next())
        .collect();
    assert!(listed.len() >= 15, "{listed:?}");
    for name in &listed {
        assert!(
            text.contains(&format!("# TYPE mcp_bridge_{name} ")),
            "README lists mcp_bridge_{name}, /metrics has no such family"
        );
    }
    for family in text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE mcp_bridge_"))
    {
        let name = family.split(' ').next().unwrap();
        assert!(listed.contains(&name), "mcp_bridge_{name} is not in README");
    }
    let after = text.lines().count();
    assert!(
        after <= before + 25,
        "one new requests series and one histogram: {before} -> {after} lines"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_exits_show_in_metrics_and_readyz_reports_draining() {
    let mut bridge = Bridge::echo(&["--admin-listen", "127.0.0.1:0"], &[]).await;
    let admin = admin_addr(&bridge);
    let scrape = |admin: String| async move {
        http()
            .get(format!("http://{admin}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let (session, _) = Session::open(&bridge, "2025-11-25").await;
    let first = child_pid(&session).await;
    signal(first, nix::sys::signal::Signal::SIGKILL);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = scrape(admin.clone()).await;
        if text.contains("mcp_bridge_child_restarts_total 1")
            && text.contains("mcp_bridge_child_up 1")
        {
            assert!(
                text.contains("mcp_bridge_child_last_exit_status -9"),
                "{text}"
            );
            assert!(text.contains("mcp_bridge_children_running 1"), "{text}");
            break;
        }
        assert!(Instant::now() < deadline, "no restart seen: {text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // During the drain the main listener is closed; the admin listener still answers.
    let slow = session.spawn_request(tool_call(json!("slow"), "sleep", json!({"ms": 1500})));
    tokio::time::sleep(Duration::from_millis(200)).await;
    signal(bridge.pid(), nix::sys::signal::Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(5);
    let reason = loop {
        let resp = http()
            .get(format!("http://{admin}/readyz"))
            .send()
            .await
            .unwrap();
        if resp.status() == 503 {
            let body: Value = resp.json().await.unwrap();
            break body["reason"].as_str().unwrap_or("").to_string();
        }
        assert!(Instant::now() < deadline, "readyz never turned 503");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(reason.starts_with("draining"), "{reason}");
    let answer = slow.await.unwrap();
    assert!(
        answer.get("result").is_some(),
        "the in-flight call completes: {answer}"
    );
    let status = bridge.wait_exit(Duration::from_secs(10)).expect("exits");
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn protect_metrics_also_guards_the_admin_listener() {
    let dir = Scratch::new("admin-tokens");
    let tokens = dir.file("tokens");
    std::fs::write(&tokens, "tok-admin\n").unwrap();
    let bridge = Bridge::echo(
        &[
            "--admin-listen",
            "127.0.0.1:0",
            "--auth-token-file",
            tokens.to_str().unwrap(),
            "--protect-metrics",
        ],
        &[],
    )
    .await;
    let admin = admin_addr(&bridge);
    let metrics = format!("http://{admin}/metrics");
    assert_eq!(curl(&[&metrics]).0, 401);
    assert_eq!(
        curl(&["-H", "authorization: Bearer tok-admin", &metrics]).0,
        200
    );
    assert_eq!(curl(&[&format!("http://{admin}/healthz")]).0, 200);
    assert_eq!(
        curl(&[&format!("http://{admin}/mcp")]).0,
        404,
        "no MCP on the admin port"
    );
}
