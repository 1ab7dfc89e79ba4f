//! Security at the HTTP edge, driven with curl: the Host and Origin allow-lists
//! (`--allowed-hosts`, `--allowed-origins`) and their defaults.

use crate::support::*;
use serde_json::json;

/// A file of bearer tokens in a fresh directory; removed with the directory on drop.
struct TokenFile(Scratch);

impl TokenFile {
    fn new(tokens: &str) -> TokenFile {
        let dir = Scratch::new("tokens");
        std::fs::write(dir.file("tokens"), tokens).unwrap();
        TokenFile(dir)
    }

    fn path(&self) -> String {
        self.0.file("tokens").display().to_string()
    }
}

#[tokio::test]
async fn host_and_origin_allow_lists_replace_and_extend_the_defaults() {
    let defaults = Bridge::echo(&[], &[]).await;
    let url = defaults.url();
    assert_eq!(curl_initialize(&url, &[]).0, 200);
    let (status, _, body) = curl_initialize(&url, &["Host: mcp.example.com"]);
    assert_eq!(
        status, 421,
        "a loopback bind serves only loopback names: {body}"
    );
    assert!(
        body.contains("--allowed-hosts"),
        "the error says what to do: {body}"
    );
    let (status, _, body) = curl_initialize(&url, &["Origin: https://app.example.com"]);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("--allowed-origins"), "{body}");

    let listed = Bridge::echo(
        &[
            "--allowed-hosts",
            "mcp.example.com,127.0.0.1",
            "--allowed-origins",
            "https://app.example.com",
        ],
        &[],
    )
    .await;
    let url = listed.url();
    assert_eq!(curl_initialize(&url, &["Host: mcp.example.com"]).0, 200);
    assert_eq!(
        curl_initialize(&url, &["Host: mcp.example.com:8443"]).0,
        200
    );
    assert_eq!(
        curl_initialize(&url, &["Host: localhost"]).0,
        421,
        "the list replaces the loopback default"
    );
    assert_eq!(
        curl_initialize(&url, &["Origin: https://app.example.com"]).0,
        200
    );
    assert_eq!(
        curl_initialize(&url, &["Origin: https://evil.example.com"]).0,
        403
    );
    assert_eq!(
        curl_initialize(
            &url,
            &["Host: mcp.example.com", "Origin: https://mcp.example.com"]
        )
        .0,
        200,
        "same origin stays allowed"
    );
}

#[tokio::test]
async fn bearer_tokens_guard_every_mcp_endpoint_and_reload_on_sighup() {
    let tokens = TokenFile::new("# team tokens\ntok-alpha\n\ntok-beta\n");
    let bridge = Bridge::echo(
        &["--auth-token-file", &tokens.path(), "--protect-metrics"],
        &[],
    )
    .await;
    let url = bridge.url();
    let post = |auth: Option<&str>| match auth {
        Some(a) => curl_initialize(&url, &[&format!("authorization: {a}")]),
        None => curl_initialize(&url, &[]),
    };
    let (status, head, body) = post(None);
    assert_eq!(status, 401, "{body}");
    assert!(
        head.contains("www-authenticate: bearer realm=\"mcp-bridge\""),
        "{head}"
    );
    assert!(
        !head.contains("resource_metadata"),
        "no OAuth metadata in token mode"
    );
    assert_eq!(
        curl(&[&bridge.at("/.well-known/oauth-protected-resource")]).0,
        404,
        "no Protected Resource Metadata in token mode"
    );
    let (status, head, _) = post(Some("Bearer tok-wrong"));
    assert_eq!(status, 401);
    assert!(head.contains("error=\"invalid_token\""), "{head}");
    assert_eq!(post(Some("Bearer tok-alpha")).0, 200);
    assert_eq!(post(Some("Bearer tok-beta")).0, 200);

    // Every MCP endpoint and /metrics refuse without a token; health stays open.
    for path in ["/sse", "/ws", "/metrics"] {
        let (status, _, body) = curl(&[&bridge.at(path)]);
        assert_eq!(status, 401, "{path}: {body}");
    }
    let (status, _, _) = curl(&[
        "-H",
        "authorization: Bearer tok-alpha",
        &bridge.at("/metrics"),
    ]);
    assert_eq!(status, 200);
    for path in ["/healthz", "/readyz"] {
        assert_eq!(curl(&[&bridge.at(path)]).0, 200, "{path}");
    }

    // SIGHUP re-reads the file.
    std::fs::write(tokens.path(), "tok-gamma\n").unwrap();
    signal(bridge.pid(), nix::sys::signal::Signal::SIGHUP);
    let reloaded = eventually(|| post(Some("Bearer tok-gamma")).0 == 200).await;
    assert!(reloaded, "the new token works after SIGHUP");
    assert_eq!(
        post(Some("Bearer tok-alpha")).0,
        401,
        "the old token is gone"
    );
    assert!(
        bridge.logs().iter().all(|l| !l.contains("tok-")),
        "tokens never appear in the logs"
    );
}

#[tokio::test]
async fn the_environment_token_works_and_is_not_passed_to_the_child() {
    let bridge = Bridge::start_with_env(
        &[],
        &echo_child(&[]),
        &[("MCP_BRIDGE_AUTH_TOKEN", "env-secret-token")],
    );
    let url = bridge.url();
    let init = initialize_body(json!(1), "2025-11-25").to_string();
    let ok =
        eventually(|| curl_initialize(&url, &["authorization: Bearer env-secret-token"]).0 == 200)
            .await;
    assert!(ok, "the environment token is accepted");
    assert_eq!(curl_initialize(&url, &[]).0, 401);
    // The child's environment lacks the token: ask the echo child through a session.
    let http = http();
    let resp = http
        .post(&url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("authorization", "Bearer env-secret-token")
        .body(init)
        .send()
        .await
        .unwrap();
    let session = session_id(&resp);
    let call = tool_call(json!(2), "env", json!({"name": "MCP_BRIDGE_AUTH_TOKEN"}));
    let resp = http
        .post(&url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("authorization", "Bearer env-secret-token")
        .header("mcp-session-id", &session)
        .body(call.to_string())
        .send()
        .await
        .unwrap();
    let (_, reply) = response_of(resp).await;
    assert_eq!(tool_text(&reply), "", "the child does not see the token");
}

#[tokio::test]
async fn a_session_used_with_another_token_is_unknown() {
    let tokens = TokenFile::new("tok-a\ntok-b\n");
    let bridge = Bridge::echo(&["--auth-token-file", &tokens.path()], &[]).await;
    let url = bridge.url();
    let http = http();
    let send =
        |token: &str, session: Option<&str>, method: reqwest::Method, body: Option<String>| {
            let mut req = http
                .request(method, &url)
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .header("authorization", format!("Bearer {token}"));
            if let Some(s) = session {
                req = req.header("mcp-session-id", s);
            }
            if let Some(b) = body {
                req = req.body(b);
            }
            req.send()
        };
    let init = initialize_body(json!(1), "2025-11-25").to_string();
    let resp = send("tok-a", None, reqwest::Method::POST, Some(init))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let session = session_id(&resp);
    let call = tool_call(json!(2), "echo", json!({"message": "mine"})).to_string();
    let stolen = send(
        "tok-b",
        Some(&session),
        reqwest::Method::POST,
        Some(call.clone()),
    )
    .await
    .unwrap();
    assert_eq!(stolen.status(), 404, "another token's session is unknown");
    for method in [reqwest::Method::GET, reqwest::Method::DELETE] {
        let resp = send("tok-b", Some(&session), method.clone(), None)
            .await
            .unwrap();
        assert_eq!(resp.status(), 404, "{method}");
    }
    let own = send("tok-a", Some(&session), reqwest::Method::POST, Some(call))
        .await
        .unwrap();
    assert_eq!(own.status(), 200);
    assert_eq!(tool_text(&response_of(own).await.1), "mine");

    // Legacy SSE: the message path refuses another token for the stream's session.
    let mut stream = http
        .get(bridge.at("/sse"))
        .header("authorization", "Bearer tok-a")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let mut text = String::new();
    while !text.contains("\n\n") {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(5), stream.chunk())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let endpoint = text
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .expect("the endpoint event")
        .to_string();
    let message_url = bridge.at(&endpoint);
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}).to_string();
    for (token, want) in [("tok-b", 404), ("tok-a", 202)] {
        let resp = http
            .post(&message_url)
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {token}"))
            .body(ping.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), want, "{token}");
    }
}

#[tokio::test]
async fn cors_answers_preflights_and_exposes_the_session_header_to_allowed_origins() {
    let tokens = TokenFile::new("tok-cors\n");
    let bridge = Bridge::echo(
        &[
            "--cors-origin",
            "https://app.example.com",
            "--auth-token-file",
            &tokens.path(),
        ],
        &[],
    )
    .await;
    let url = bridge.url();
    let (status, head, _) = curl(&[
        "-X",
        "OPTIONS",
        "-H",
        "origin: https://app.example.com",
        "-H",
        "access-control-request-method: POST",
        "-H",
        "access-control-request-headers: authorization, content-type, mcp-session-id",
        &url,
    ]);
    assert_eq!(status, 204, "{head}");
    assert!(
        head.contains("access-control-allow-origin: https://app.example.com"),
        "{head}"
    );
    assert!(
        head.contains("access-control-allow-methods: get, post, delete, options"),
        "{head}"
    );
    assert!(head.contains("mcp-session-id"), "{head}");

    let origin = "origin: https://app.example.com";
    let (status, head, body) = curl_initialize(&url, &[origin, "authorization: Bearer tok-cors"]);
    assert_eq!(status, 200, "{body}");
    assert!(
        head.contains("access-control-allow-origin: https://app.example.com"),
        "{head}"
    );
    assert!(
        head.contains(
            "access-control-expose-headers: mcp-session-id, mcp-protocol-version, www-authenticate"
        ),
        "{head}"
    );
    let (status, head, _) = curl_initialize(&url, &[origin]);
    assert_eq!(status, 401);
    assert!(
        head.contains("access-control-allow-origin"),
        "a browser can read the 401: {head}"
    );
    let (status, head, _) = curl_initialize(
        &url,
        &[
            "origin: https://evil.example",
            "authorization: Bearer tok-cors",
        ],
    );
    assert_eq!(status, 403);
    assert!(!head.contains("access-control-allow-origin"), "{head}");

    let plain = Bridge::echo(&[], &[]).await;
    let (status, head, _) = curl_initialize(&plain.url(), &["origin: http://localhost:3000"]);
    assert_eq!(status, 200);
    assert!(
        !head.contains("access-control-allow-origin"),
        "CORS is off by default"
    );
}

#[tokio::test]
async fn secrets_never_reach_logs_error_bodies_or_metrics() {
    let tokens = TokenFile::new("tok-secret-4471\n");
    let bridge = Bridge::start_with_env(
        &[
            "--auth-token-file",
            &tokens.path(),
            "--env",
            "STATIC_SECRET=env-secret-9932",
            "--isolation",
            "session",
            "--session-env",
            "x-api-key=API_KEY",
        ],
        &echo_child(&[]),
        &[(
            "MCP_BRIDGE_SESSION_SECRET",
            "sealing-secret-6620-0123456789abcdef",
        )],
    );
    bridge.wait_ready().await;
    let url = bridge.url();
    let http = http();
    let post = |body: String, session: Option<String>| {
        let mut req = http
            .post(&url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("authorization", "Bearer tok-secret-4471")
            .header("x-api-key", "session-secret-1187");
        if let Some(s) = session {
            req = req.header("mcp-session-id", s);
        }
        req.body(body).send()
    };
    let resp = post(initialize_body(json!(1), "2025-11-25").to_string(), None)
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let session = session_id(&resp);
    let env_of = |name: &str| tool_call(json!(name), "env", json!({"name": name})).to_string();
    for (name, want) in [
        ("API_KEY", "session-secret-1187"),
        ("STATIC_SECRET", "env-secret-9932"),
    ] {
        let resp = post(env_of(name), Some(session.clone())).await.unwrap();
        let (_, reply) = response_of(resp).await;
        assert_eq!(tool_text(&reply), want, "the child gets its secrets");
    }
    // Error bodies never echo a presented token.
    let wrong = http
        .post(&url)
        .header("content-type", "application/json")
        .header("authorization", "Bearer tok-wrong-5519")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(!wrong.text().await.unwrap().contains("5519"));
    let metrics = metrics_text(&bridge).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let logs = bridge.logs().join("\n");
    assert!(
        logs.contains("session initialized"),
        "debug logs were captured"
    );
    for secret in [
        "4471",
        "5519",
        "env-secret-9932",
        "session-secret-1187",
        "sealing-secret-6620",
    ] {
        assert!(
            !logs.contains(secret),
            "{secret} leaked into the debug logs"
        );
        assert!(!metrics.contains(secret), "{secret} leaked into /metrics");
    }
}

/// Makes CA `name` (`name-ca.pem`) and a server certificate it signs for localhost and
/// 127.0.0.1 (`name.pem`, key `name.key`) in `dir`.
fn make_certificates(dir: &std::path::Path, name: &str) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let ca_key = format!("{name}-ca.key");
    let ca = format!("{name}-ca.pem");
    let mut args = vec![
        "req",
        "-x509",
        "-days",
        "1",
        "-subj",
        "/CN=mcp-bridge test CA",
    ];
    args.extend(ec);
    args.extend(["-keyout", &ca_key, "-out", &ca]);
    openssl(dir, &args);
    let key = format!("{name}.key");
    let csr = format!("{name}.csr");
    let mut args = vec!["req", "-subj", "/CN=localhost"];
    args.extend(ec);
    args.extend(["-keyout", &key, "-out", &csr]);
    openssl(dir, &args);
    let ext = format!("{name}.ext");
    std::fs::write(
        dir.join(&ext),
        "basicConstraints=CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    let cert = format!("{name}.pem");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-days",
            "1",
            "-in",
            &csr,
            "-CA",
            &ca,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-extfile",
            &ext,
            "-out",
            &cert,
        ],
    );
}

#[tokio::test]
async fn https_serves_the_typescript_sdk_client_and_reloads_its_certificate_on_sighup() {
    let scratch = Scratch::new("tls");
    let dir = scratch.0.clone();
    make_certificates(&dir, "first");
    make_certificates(&dir, "second");
    let (cert, key) = (dir.join("server.pem"), dir.join("server.key"));
    std::fs::copy(dir.join("first.pem"), &cert).unwrap();
    std::fs::copy(dir.join("first.key"), &key).unwrap();
    let bridge = Bridge::start(
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
        &everything_child(),
    );
    let port = bridge.addr.port();
    let health = format!("https://localhost:{port}/healthz");
    let ca = |name: &str| dir.join(format!("{name}-ca.pem")).display().to_string();
    let status_with = |ca: &str| curl(&["--cacert", ca, &health]).0;
    let up = eventually(|| status_with(&ca("first")) == 200).await;
    assert!(up, "the bridge answers over https");
    assert_eq!(
        curl(&[&health]).0,
        0,
        "an untrusted certificate is refused by curl"
    );
    assert_eq!(
        curl(&[&format!("http://127.0.0.1:{port}/healthz")]).0,
        0,
        "plain HTTP gets no HTTP answer on a TLS listener"
    );

    let url = format!("https://localhost:{port}/mcp");
    let summary = run_client_env(
        std::path::PathBuf::from("node"),
        "ts_client.mjs",
        &[&url],
        &[("NODE_EXTRA_CA_CERTS", &ca("first"))],
    )
    .await;
    assert_eq!(summary["ok"], true, "{summary}");

    std::fs::copy(dir.join("second.pem"), &cert).unwrap();
    std::fs::copy(dir.join("second.key"), &key).unwrap();
    signal(bridge.pid(), nix::sys::signal::Signal::SIGHUP);
    let reloaded = eventually(|| status_with(&ca("second")) == 200).await;
    assert!(reloaded, "the new certificate is served after SIGHUP");
    assert_eq!(status_with(&ca("first")), 0, "the old certificate is gone");
}
