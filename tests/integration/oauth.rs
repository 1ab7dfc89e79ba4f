//! OAuth 2.1 resource-server mode (`--oauth-issuer`, `--oauth-jwks`, `--public-url`,
//! `--oauth-scope`) against a test authorization server on loopback: it serves its metadata, a
//! JWK Set of openssl-made RSA and EC keys, and issues JWTs for the client_credentials grant.
//! Requests go through curl (status codes and challenges) and the official TypeScript SDK client
//! (discovery and the token flow).

use crate::support::*;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use jsonwebtoken::{jwk::Jwk, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SCOPE: &str = "mcp:tools";
const CLIENT_ID: &str = "client-1";
const CLIENT_SECRET: &str = "secret-7731";

/// A private key made by openssl and its public JWK.
struct Key {
    private: EncodingKey,
    alg: Algorithm,
    kid: &'static str,
}

impl Key {
    /// Generates a key with openssl in `dir`: `RSA` (2048 bits, RS256) or `EC` (P-256, ES256).
    fn generate(dir: &Scratch, kind: &str, kid: &'static str) -> Key {
        let file = format!("{kid}.pem");
        let (alg, opt) = match kind {
            "RSA" => (Algorithm::RS256, "rsa_keygen_bits:2048"),
            _ => (Algorithm::ES256, "ec_paramgen_curve:P-256"),
        };
        openssl(
            &dir.0,
            &[
                "genpkey",
                "-algorithm",
                kind,
                "-pkeyopt",
                opt,
                "-out",
                &file,
            ],
        );
        let pem = std::fs::read(dir.file(&file)).unwrap();
        let private = match alg {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem).unwrap(),
            _ => EncodingKey::from_ec_pem(&pem).unwrap(),
        };
        Key { private, alg, kid }
    }

    /// The public key as a JWK with `kid` and `use: sig`.
    fn jwk(&self) -> Value {
        let mut jwk =
            serde_json::to_value(Jwk::from_encoding_key(&self.private, self.alg).unwrap()).unwrap();
        jwk["kid"] = json!(self.kid);
        jwk["use"] = json!("sig");
        jwk
    }

    /// A JWS of `claims` signed with this key, its alg and its kid.
    fn sign(&self, claims: &Value) -> String {
        self.sign_as(self.kid, claims)
    }

    /// Like [`Key::sign`], but naming `kid` in the header.
    fn sign_as(&self, kid: &str, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(kid.to_string());
        jsonwebtoken::encode(&header, claims, &self.private).unwrap()
    }
}

fn jwks(keys: &[&Key]) -> Value {
    json!({ "keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>() })
}

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

/// Claims of a token that `issuer` issues to `sub` for `aud` with `scope`, valid for 5 minutes.
fn claims(issuer: &str, aud: &str, sub: &str, scope: &str) -> Value {
    json!({
        "iss": issuer, "aud": aud, "sub": sub, "scope": scope,
        "iat": now(), "exp": now() + 300, "jti": format!("{sub}-{}", now_nanos()),
    })
}

fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// What the test authorization server serves and has seen.
struct AsState {
    issuer: String,
    jwks: Mutex<Value>,
    jwks_fetches: AtomicUsize,
    /// Signs issued tokens.
    signer: Key,
    /// The `resource` of the last token request.
    last_resource: Mutex<Option<String>>,
}

/// A loopback authorization server: RFC 8414 metadata, the JWK Set at `/jwks` and a
/// client_credentials token endpoint (client_secret_basic) at `/token`. Stops on drop.
struct AuthServer {
    state: Arc<AsState>,
    task: tokio::task::JoinHandle<()>,
}

impl AuthServer {
    async fn start(jwks: Value, signer: Key) -> AuthServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(AsState {
            issuer,
            jwks: Mutex::new(jwks),
            jwks_fetches: AtomicUsize::new(0),
            signer,
            last_resource: Mutex::new(None),
        });
        let shared = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let state = shared.clone();
                let service = hyper::service::service_fn(move |req| {
                    let state = state.clone();
                    async move { Ok::<_, std::convert::Infallible>(serve(req, &state).await) }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service),
                );
            }
        });
        AuthServer { state, task }
    }

    fn issuer(&self) -> &str {
        &self.state.issuer
    }

    fn jwks_url(&self) -> String {
        format!("{}/jwks", self.state.issuer)
    }

    fn jwks_fetches(&self) -> usize {
        self.state.jwks_fetches.load(Ordering::SeqCst)
    }

    fn set_jwks(&self, jwks: Value) {
        *self.state.jwks.lock().unwrap() = jwks;
    }
}

impl Drop for AuthServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn reply(status: u16, body: Value) -> http::Response<Full<Bytes>> {
    http::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

async fn serve(
    req: http::Request<hyper::body::Incoming>,
    s: &AsState,
) -> http::Response<Full<Bytes>> {
    let iss = &s.issuer;
    match (req.method().as_str(), req.uri().path()) {
        ("GET", "/.well-known/oauth-authorization-server") => reply(
            200,
            json!({
                "issuer": iss,
                "authorization_endpoint": format!("{iss}/authorize"),
                "token_endpoint": format!("{iss}/token"),
                "jwks_uri": format!("{iss}/jwks"),
                "response_types_supported": ["code"],
                "grant_types_supported": ["client_credentials"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic"],
            }),
        ),
        ("GET", "/jwks") => {
            s.jwks_fetches.fetch_add(1, Ordering::SeqCst);
            reply(200, s.jwks.lock().unwrap().clone())
        }
        ("POST", "/token") => {
            let basic = format!(
                "Basic {}",
                STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
            );
            let authorized = req
                .headers()
                .get("authorization")
                .is_some_and(|v| v.as_bytes() == basic.as_bytes());
            let body = req.into_body().collect().await.unwrap().to_bytes();
            let form: std::collections::HashMap<String, String> =
                form_urlencoded::parse(&body).into_owned().collect();
            if !authorized {
                return reply(401, json!({"error": "invalid_client"}));
            }
            if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
                return reply(400, json!({"error": "unsupported_grant_type"}));
            }
            let Some(resource) = form.get("resource") else {
                return reply(400, json!({"error": "invalid_target"}));
            };
            *s.last_resource.lock().unwrap() = Some(resource.clone());
            let scope = form.get("scope").cloned().unwrap_or_default();
            let token = s.signer.sign(&claims(iss, resource, CLIENT_ID, &scope));
            reply(
                200,
                json!({"access_token": token, "token_type": "Bearer", "expires_in": 300, "scope": scope}),
            )
        }
        _ => reply(404, json!({"error": "not found"})),
    }
}

/// A bridge in OAuth mode on a port chosen beforehand, so that `--public-url` is its real URL.
/// An empty `jwks` leaves `--oauth-jwks` out: the keys are discovered from the issuer.
fn oauth_bridge(jwks: &str, issuer: &str, extra: &[&str], child: &[String]) -> Bridge {
    let port = free_port().to_string();
    let public = format!("http://127.0.0.1:{port}/mcp");
    let mut args = vec![
        "--port",
        &port,
        "--oauth-issuer",
        issuer,
        "--public-url",
        &public,
        "--oauth-scope",
        SCOPE,
    ];
    if !jwks.is_empty() {
        args.extend(["--oauth-jwks", jwks]);
    }
    args.extend(extra);
    Bridge::start(&args, child)
}

/// curl POST of an `initialize` with `token` (if any); returns status, head and body.
fn initialize_with(bridge: &Bridge, token: Option<&str>) -> (u16, String, String) {
    match token {
        Some(t) => curl_initialize(&bridge.url(), &[&format!("authorization: Bearer {t}")]),
        None => curl_initialize(&bridge.url(), &[]),
    }
}

/// The value of header `name` in `head` (lowercased by [`curl`]).
fn header_of(head: &str, name: &str) -> String {
    head.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .unwrap_or("")
        .trim()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_valid_tokens_get_in_and_every_refusal_says_why() {
    let dir = Scratch::new("oauth-keys");
    let rsa = Key::generate(&dir, "RSA", "rsa-1");
    let ec = Key::generate(&dir, "EC", "ec-1");
    let stranger = Key::generate(&dir, "RSA", "stranger");
    let server = AuthServer::start(jwks(&[&rsa, &ec]), Key::generate(&dir, "EC", "as")).await;
    let bridge = oauth_bridge(&server.jwks_url(), server.issuer(), &[], &echo_child(&[]));
    bridge.wait_ready().await;
    let port = bridge.addr.port();
    let public = bridge.url();
    let iss = server.issuer();
    let meta = format!("http://127.0.0.1:{port}/.well-known/oauth-protected-resource/mcp");

    // No token: 401 pointing at the metadata, with the scope, and no error code (RFC 6750 3.1).
    let (status, head, body) = initialize_with(&bridge, None);
    assert_eq!(status, 401, "{body}");
    assert_eq!(
        header_of(&head, "www-authenticate"),
        format!("bearer resource_metadata=\"{meta}\", scope=\"{SCOPE}\""),
    );

    let good = claims(iss, &public, "alice", SCOPE);
    assert_eq!(
        initialize_with(&bridge, Some(&rsa.sign(&good))).0,
        200,
        "RS256"
    );
    assert_eq!(
        initialize_with(&bridge, Some(&ec.sign(&good))).0,
        200,
        "ES256"
    );
    let mut scp = good.clone();
    scp.as_object_mut().unwrap().remove("scope");
    scp["scp"] = json!(["other", SCOPE]);
    assert_eq!(
        initialize_with(&bridge, Some(&rsa.sign(&scp))).0,
        200,
        "scp array"
    );

    let with = |key: &str, value: Value| {
        let mut c = good.clone();
        c[key] = value;
        c
    };
    let without = |key: &str| {
        let mut c = good.clone();
        c.as_object_mut().unwrap().remove(key);
        c
    };
    let b64 = |v: Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let alg_none = format!(
        "{}.{}.",
        b64(json!({"alg": "none", "typ": "JWT"})),
        b64(good.clone())
    );
    let hs256 = jsonwebtoken::encode(
        &Header {
            kid: Some("rsa-1".into()),
            ..Header::new(Algorithm::HS256)
        },
        &good,
        &EncodingKey::from_secret(rsa.jwk()["n"].as_str().unwrap().as_bytes()),
    )
    .unwrap();
    let refused = [
        (
            "expired",
            rsa.sign(&with("exp", json!(now() - 120))),
            "expired",
        ),
        (
            "not yet valid",
            rsa.sign(&with("nbf", json!(now() + 600))),
            "not valid yet",
        ),
        (
            "wrong audience",
            rsa.sign(&with("aud", json!("https://other.example/mcp"))),
            "audience",
        ),
        (
            "wrong issuer",
            rsa.sign(&with("iss", json!("https://evil.example"))),
            "issuer",
        ),
        ("no exp", rsa.sign(&without("exp")), "no exp"),
        ("no subject", rsa.sign(&without("sub")), "neither sub"),
        (
            "bad signature",
            stranger.sign_as("rsa-1", &good),
            "signature",
        ),
        (
            "unknown key",
            stranger.sign(&good),
            "not in the issuer's JWK Set",
        ),
        ("alg none", alg_none, "alg none"),
        ("HS256 with the public key", hs256, "HMAC"),
        ("garbage", "not-a-jwt".to_string(), "not a signed JWT"),
    ];
    for (case, token, why) in &refused {
        let (status, head, body) = initialize_with(&bridge, Some(token));
        assert_eq!(status, 401, "{case}: {body}");
        let challenge = header_of(&head, "www-authenticate");
        assert!(
            challenge.starts_with("bearer error=\"invalid_token\", error_description=")
                && challenge.ends_with(&format!("resource_metadata=\"{meta}\"")),
            "{case}: {challenge}"
        );
        assert!(body.contains(why), "{case}: the body says why: {body}");
        assert!(
            !body.contains(token.as_str()),
            "{case}: the token is not echoed"
        );
    }

    let (status, head, body) =
        initialize_with(&bridge, Some(&rsa.sign(&with("scope", json!("mcp:read")))));
    assert_eq!(status, 403, "missing scope: {body}");
    assert_eq!(
        header_of(&head, "www-authenticate"),
        format!(
            "bearer error=\"insufficient_scope\", scope=\"{SCOPE}\", resource_metadata=\"{meta}\""
        ),
    );

    // Every MCP endpoint asks for the token; health stays open.
    let token = rsa.sign(&good);
    let auth = format!("Authorization: Bearer {token}");
    for (method, path) in [
        ("GET", "/mcp"),
        ("DELETE", "/mcp"),
        ("GET", "/sse"),
        ("POST", "/message?sessionId=x"),
        ("GET", "/ws"),
    ] {
        let url = bridge.at(path);
        assert_eq!(curl(&["-X", method, &url]).0, 401, "{method} {path}");
    }
    assert_eq!(
        curl(&["-H", &auth, &bridge.at("/mcp")]).0,
        400,
        "GET with a token passes authentication and then needs a session"
    );
    assert_eq!(curl(&[&bridge.at("/healthz")]).0, 200);
    assert_eq!(curl(&[&bridge.at("/readyz")]).0, 200);

    // Protected Resource Metadata, at the root and path-suffixed, readable from browsers.
    for path in [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
    ] {
        let (status, head, body) = curl(&[&bridge.at(path)]);
        assert_eq!(status, 200, "{path}");
        assert_eq!(header_of(&head, "access-control-allow-origin"), "*");
        let doc: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(doc["resource"], public.as_str());
        assert_eq!(doc["authorization_servers"], json!([iss]));
        assert_eq!(doc["scopes_supported"], json!([SCOPE]));
        assert_eq!(doc["bearer_methods_supported"], json!(["header"]));
    }
    let (status, head, _) = curl(&[
        "-X",
        "OPTIONS",
        "-H",
        "origin: https://inspector.example",
        "-H",
        "access-control-request-headers: mcp-protocol-version",
        &bridge.at("/.well-known/oauth-protected-resource/mcp"),
    ]);
    assert_eq!(status, 204, "a browser preflight for the metadata");
    assert_eq!(header_of(&head, "access-control-allow-headers"), "*");
    assert_eq!(
        curl(&[&bridge.at("/.well-known/oauth-protected-resource/other")]).0,
        404
    );
    for line in bridge.logs() {
        assert!(!line.contains(&token), "a token reached the log: {line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_bound_to_the_token_subject_not_to_one_token() {
    let dir = Scratch::new("oauth-subject");
    let key = Key::generate(&dir, "EC", "ec-1");
    let server = AuthServer::start(jwks(&[&key]), Key::generate(&dir, "EC", "as")).await;
    let bridge = oauth_bridge(&server.jwks_url(), server.issuer(), &[], &echo_child(&[]));
    bridge.wait_ready().await;
    let token = |sub: &str| key.sign(&claims(server.issuer(), &bridge.url(), sub, SCOPE));
    let alice = token("alice");
    let resp = http()
        .post(bridge.url())
        .bearer_auth(&alice)
        .header("accept", "application/json, text/event-stream")
        .json(&initialize_body(json!(1), "2025-11-25"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let sid = session_id(&resp);
    let ping = |bearer: String| {
        let sid = sid.clone();
        let url = bridge.url();
        async move {
            http()
                .post(url)
                .bearer_auth(bearer)
                .header("mcp-session-id", sid)
                .header("accept", "application/json, text/event-stream")
                .json(&json!({"jsonrpc": "2.0", "id": 2, "method": "ping"}))
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(
        ping(token("bob")).await,
        404,
        "another subject's valid token"
    );
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(
        ping(token("alice")).await,
        200,
        "a fresh token of the same subject"
    );
    let stream = http()
        .get(bridge.url())
        .bearer_auth(token("bob"))
        .header("mcp-session-id", &sid)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(
        stream.status(),
        404,
        "nor can another subject open its stream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_kid_refetches_the_key_set_at_most_every_ten_seconds() {
    let dir = Scratch::new("oauth-rotate");
    let old = Key::generate(&dir, "EC", "old");
    let new = Key::generate(&dir, "EC", "new");
    let server = AuthServer::start(jwks(&[&old]), Key::generate(&dir, "EC", "as")).await;
    let bridge = oauth_bridge(&server.jwks_url(), server.issuer(), &[], &echo_child(&[]));
    bridge.wait_ready().await;
    let good = claims(server.issuer(), &bridge.url(), "alice", SCOPE);
    assert_eq!(initialize_with(&bridge, Some(&old.sign(&good))).0, 200);
    let started = std::time::Instant::now();
    let fetched = server.jwks_fetches();
    assert_eq!(fetched, 1, "the key set is fetched once at start");

    server.set_jwks(jwks(&[&old, &new]));
    for i in 0..20 {
        let random = old.sign_as(&format!("random-{i}"), &good);
        assert_eq!(initialize_with(&bridge, Some(&random)).0, 401);
    }
    assert_eq!(
        server.jwks_fetches(),
        fetched,
        "unknown kids within 10 s of the last fetch do not reach the issuer"
    );
    tokio::time::sleep(
        Duration::from_secs(10).saturating_sub(started.elapsed()) + Duration::from_millis(500),
    )
    .await;
    assert_eq!(
        initialize_with(&bridge, Some(&new.sign(&good))).0,
        200,
        "a rotated-in key is picked up by the refetch"
    );
    assert_eq!(server.jwks_fetches(), fetched + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_file_reloads_on_sighup_and_an_unreachable_key_set_gives_503() {
    let dir = Scratch::new("oauth-file");
    let first = Key::generate(&dir, "EC", "first");
    let second = Key::generate(&dir, "RSA", "second");
    let file = dir.file("jwks.json");
    std::fs::write(&file, jwks(&[&first]).to_string()).unwrap();
    let issuer = "https://auth.example.com";
    let bridge = oauth_bridge(file.to_str().unwrap(), issuer, &[], &echo_child(&[]));
    bridge.wait_ready().await;
    let good = claims(issuer, &bridge.url(), "alice", SCOPE);
    assert_eq!(initialize_with(&bridge, Some(&first.sign(&good))).0, 200);
    std::fs::write(&file, jwks(&[&second]).to_string()).unwrap();
    signal(bridge.pid(), nix::sys::signal::Signal::SIGHUP);
    let swapped = eventually(|| initialize_with(&bridge, Some(&second.sign(&good))).0 == 200).await;
    assert!(swapped, "the new key file is in force after SIGHUP");
    assert_eq!(
        initialize_with(&bridge, Some(&first.sign(&good))).0,
        401,
        "the removed key is gone"
    );

    let closed = format!("http://127.0.0.1:{}/jwks", free_port());
    let unreachable = oauth_bridge(&closed, issuer, &[], &echo_child(&[]));
    unreachable.wait_ready().await;
    let (status, head, body) = initialize_with(&unreachable, Some(&first.sign(&good)));
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("cannot check tokens yet"), "{body}");
    assert!(
        !body.contains(&closed),
        "the key URL stays in the log: {body}"
    );
    let logged = eventually(|| {
        unreachable
            .logs()
            .iter()
            .any(|l| l.contains(&format!("cannot fetch {closed}")))
    })
    .await;
    assert!(logged, "the log says why");
    assert!(head.contains("retry-after: 5"), "{head}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typescript_sdk_client_discovers_the_metadata_and_connects_with_a_token() {
    let dir = Scratch::new("oauth-ts");
    let signer = Key::generate(&dir, "RSA", "as-1");
    let server = AuthServer::start(jwks(&[&signer]), signer).await;
    // No --oauth-jwks: the keys' URL comes from the authorization server's metadata.
    let bridge = oauth_bridge("", server.issuer(), &[], &everything_child());
    bridge.wait_ready().await;
    let url = bridge.url();
    let summary = run_client(
        std::path::PathBuf::from("node"),
        "ts_oauth.mjs",
        &[&url, server.issuer(), CLIENT_ID, CLIENT_SECRET, SCOPE],
    )
    .await;
    assert_eq!(summary["ok"], true, "{summary}");
    assert_eq!(
        summary["metadataUrl"],
        format!(
            "http://127.0.0.1:{}/.well-known/oauth-protected-resource/mcp",
            bridge.addr.port()
        )
    );
    assert_eq!(
        server.state.last_resource.lock().unwrap().as_deref(),
        Some(url.as_str()),
        "the SDK asked for a token for this bridge (RFC 8707 resource)"
    );
}

#[test]
fn oauth_flags_are_validated_at_start() {
    let run = |args: &[&str]| {
        let out = std::process::Command::new(bridge_bin())
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, err) = run(&[
        "--oauth-issuer",
        "https://a.example",
        "--oauth-jwks",
        "k.json",
        "--",
        "x",
    ]);
    assert_eq!(code, Some(64), "--public-url is required: {err}");
    assert!(err.contains("--public-url"), "{err}");
    let (code, err) = run(&[
        "--oauth-issuer",
        "https://a.example",
        "--oauth-jwks",
        "http://keys.example/jwks",
        "--public-url",
        "https://m.example/mcp",
        "--",
        "x",
    ]);
    assert_eq!(code, Some(64), "{err}");
    assert!(err.contains("https"), "{err}");
    let (code, err) = run(&[
        "--oauth-issuer",
        "https://a.example",
        "--oauth-jwks",
        "/nonexistent/jwks.json",
        "--public-url",
        "https://m.example/mcp",
        "--port",
        "0",
        "--",
        "true",
    ]);
    assert_ne!(code, Some(0), "{err}");
    assert!(err.contains("/nonexistent/jwks.json"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_discovered_from_the_issuer_metadata_which_must_name_the_issuer() {
    let dir = Scratch::new("oauth-discovery");
    let key = Key::generate(&dir, "EC", "ec-1");
    let server = AuthServer::start(jwks(&[&key]), Key::generate(&dir, "EC", "as")).await;
    let bridge = oauth_bridge("", server.issuer(), &[], &echo_child(&[]));
    bridge.wait_ready().await;
    let good = claims(server.issuer(), &bridge.url(), "alice", SCOPE);
    assert_eq!(initialize_with(&bridge, Some(&key.sign(&good))).0, 200);
    assert!(
        server.jwks_fetches() >= 1,
        "the jwks_uri of the metadata was fetched"
    );

    // The same server under another name: its metadata names a different issuer.
    let alias = server.issuer().replace("127.0.0.1", "localhost");
    let wrong = oauth_bridge("", &alias, &[], &echo_child(&[]));
    wrong.wait_ready().await;
    let token = key.sign(&claims(&alias, &wrong.url(), "alice", SCOPE));
    let (status, _, body) = initialize_with(&wrong, Some(&token));
    assert_eq!(status, 503, "{body}");
    let logged = eventually(|| {
        wrong
            .logs()
            .iter()
            .any(|l| l.contains("not --oauth-issuer"))
    })
    .await;
    assert!(
        logged,
        "the log names both issuers: {}",
        wrong.logs().join("\n")
    );
}
