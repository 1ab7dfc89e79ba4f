//! OAuth 2.1 resource-server mode (PROTOCOL.md section 5; MCP authorization 2025-06-18 and
//! 2025-11-25, RFC 9728, RFC 8707, RFC 6750 section 3).
//!
//! Owns: validating JWT access tokens (signature against the issuer's JWK Set, `iss`, `aud`,
//! `exp`, `nbf`, required scopes), the JWK Set cache and its refresh, the Protected Resource
//! Metadata document and the `WWW-Authenticate` challenges that point to it. Tokens are never
//! logged and never reach the child.
//!
//! Key policy: only asymmetric keys (RSA, EC P-256/P-384, Ed25519) from the JWK Set are used,
//! each for the algorithms of its own type (or its `alg` when the JWK names one), so neither
//! `alg: none` nor HMAC tokens signed with a public key as the secret can pass.

use crate::transport::{full, Body};
use bytes::Bytes;
use http::{header, HeaderValue, Method, Response, StatusCode};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// Clock skew allowed on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECS: u64 = 30;
/// Largest JWK Set accepted, in bytes.
pub const JWKS_MAX_BYTES: usize = 1 << 20;
/// An unknown `kid` refetches the JWK Set at most this often (so random `kid`s cannot make the
/// bridge hammer the issuer).
pub const REFETCH_MIN_INTERVAL: Duration = Duration::from_secs(10);
/// Keys older than this are refetched on the next token (key removal at the issuer takes
/// effect within this time).
pub const KEYS_MAX_AGE: Duration = Duration::from_secs(15 * 60);
/// Bound on one JWK Set fetch (connect, request and body), in seconds.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// The well-known path of Protected Resource Metadata (RFC 9728 section 3).
pub const METADATA_PATH: &str = "/.well-known/oauth-protected-resource";

/// The validated OAuth settings (from `--oauth-issuer`, `--oauth-jwks`, `--oauth-audience`,
/// `--oauth-scope`, `--public-url`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthSettings {
    /// The exact `iss` value accepted, also the one authorization server advertised.
    pub issuer: String,
    /// Where the signing keys come from.
    pub jwks: JwksSource,
    /// Accepted `aud` values (any one suffices); the public URL when none is given.
    pub audiences: Vec<String>,
    /// Scopes every token must grant.
    pub scopes: Vec<String>,
    /// The MCP endpoint's public URL: the metadata's `resource`.
    pub public_url: String,
}

/// Where the JWK Set comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    /// An `https` URL (or `http` on a loopback host).
    Url(String),
    /// A local file, re-read on SIGHUP and on an unknown `kid`.
    File(PathBuf),
    /// No `--oauth-jwks`: the `jwks_uri` of the issuer's metadata (RFC 8414
    /// `/.well-known/oauth-authorization-server`, then OpenID Connect
    /// `/.well-known/openid-configuration`), looked up on every key load.
    Discover,
}

impl OAuthSettings {
    /// Validates the flags. `issuer` and `public_url` must be absolute http(s) URLs without
    /// quotes, backslashes or whitespace; `jwks` is a URL when it starts with `http://` or
    /// `https://` (plain http only to a loopback host), else a path, and when absent the keys
    /// are discovered from the issuer (which must then be https, or http on loopback); scopes
    /// must be RFC 6749 scope tokens. Errors: a message naming the flag and what is wrong.
    pub fn new(
        issuer: String,
        jwks: Option<String>,
        audiences: Vec<String>,
        scopes: Vec<String>,
        public_url: String,
    ) -> Result<OAuthSettings, String> {
        absolute_url("--oauth-issuer", &issuer)?;
        let public_url = canonical_url(&public_url)?;
        let jwks = match jwks {
            None => {
                secure_url("--oauth-issuer", &issuer)?;
                JwksSource::Discover
            }
            Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
                secure_url("--oauth-jwks", &url)?;
                JwksSource::Url(url)
            }
            Some(path) => JwksSource::File(PathBuf::from(path)),
        };
        for s in &scopes {
            let valid = !s.is_empty()
                && s.bytes()
                    .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b));
            if !valid {
                return Err(format!("--oauth-scope {s:?} is not a scope token (RFC 6749 section 3.3: printable ASCII without spaces, quotes or backslashes)"));
            }
        }
        // Clients may name the resource with or without a trailing slash (`https://host/`).
        let audiences = match audiences.is_empty() {
            true => vec![public_url.clone(), format!("{public_url}/")],
            false => audiences,
        };
        Ok(OAuthSettings {
            issuer,
            jwks,
            audiences,
            scopes,
            public_url,
        })
    }
}

/// Parses an absolute http(s) URL that can be quoted in a header. Errors name `flag`.
fn absolute_url(flag: &str, url: &str) -> Result<http::Uri, String> {
    let bad = url
        .bytes()
        .any(|b| b == b'"' || b == b'\\' || b.is_ascii_whitespace());
    let uri: Option<http::Uri> = url.parse().ok().filter(|_| !bad);
    match uri {
        Some(u)
            if u.host().is_some()
                && u.scheme_str().is_some_and(|s| {
                    s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https")
                }) =>
        {
            Ok(u)
        }
        _ => Err(format!(
            "{flag} {url:?} must be an absolute http(s) URL such as https://auth.example.com"
        )),
    }
}

/// Checks that keys fetched from `url` cannot be swapped on the way: https, or plain http only
/// to a loopback host. Errors name `flag`.
fn secure_url(flag: &str, url: &str) -> Result<(), String> {
    let uri = absolute_url(flag, url)?;
    let plain = uri
        .scheme_str()
        .is_some_and(|s| s.eq_ignore_ascii_case("http"));
    if plain && !is_loopback(uri.host().unwrap_or("")) {
        return Err(format!("{flag} {url}: keys must come over https (plain http only from a loopback host); anyone on the path could swap them"));
    }
    Ok(())
}

/// `--public-url` in canonical form (RFC 8707 / MCP authorization "Canonical Server URI"):
/// lowercase scheme and host, no trailing slash, no query or fragment.
fn canonical_url(url: &str) -> Result<String, String> {
    let uri = absolute_url("--public-url", url)?;
    if uri.query().is_some() || url.contains('#') {
        return Err(format!(
            "--public-url {url:?} must not have a query or fragment"
        ));
    }
    let scheme = uri.scheme_str().unwrap_or("https").to_ascii_lowercase();
    let host = uri.host().unwrap_or("").to_ascii_lowercase();
    let port = uri.port_u16().map(|p| format!(":{p}")).unwrap_or_default();
    let path = uri.path().trim_end_matches('/');
    Ok(format!("{scheme}://{host}{port}{path}"))
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Why a token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// The token is malformed, badly signed, expired, for someone else, etc. (401): the fixed
    /// description says which, without echoing the token.
    Invalid(&'static str),
    /// The token is valid but lacks required scopes (403).
    Scope,
    /// No key could be loaded to check the token with (503): the fetch or read error.
    Unavailable(String),
}

/// Who a valid token stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// The token's `iss`.
    pub issuer: String,
    /// `sub:<sub>`, or `client_id:<client_id>` when the token has no `sub`.
    pub subject: String,
}

/// One usable verification key.
#[derive(Clone)]
struct Key {
    kid: Option<String>,
    key: DecodingKey,
    algorithms: Vec<Algorithm>,
}

/// The keys in force and when they were last loaded or tried.
#[derive(Clone, Default)]
struct KeySet {
    keys: Arc<Vec<Key>>,
    loaded: Option<Instant>,
    tried: Option<Instant>,
    error: Option<String>,
}

/// The claims the bridge reads; the rest of the token is ignored.
#[derive(serde::Deserialize)]
struct Claims {
    iss: String,
    sub: Option<String>,
    client_id: Option<String>,
    scope: Option<String>,
    scp: Option<serde_json::Value>,
}

/// The OAuth resource server: settings, the key cache and the prepared metadata document.
pub struct OAuth {
    settings: OAuthSettings,
    client: reqwest::Client,
    keys: RwLock<KeySet>,
    /// Serializes refreshes so concurrent unknown `kid`s cause one fetch.
    refreshing: tokio::sync::Mutex<()>,
    /// The Protected Resource Metadata JSON.
    metadata: Bytes,
    /// Its public URL, for `resource_metadata`.
    metadata_url: String,
    /// Local paths the metadata is served on.
    metadata_paths: Vec<String>,
}

impl std::fmt::Debug for OAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuth")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl OAuth {
    /// Builds the resource server. `mcp_path` is the bridge's local MCP path, on whose
    /// path-suffixed well-known form the metadata is also served. A JWK Set file is read now; a
    /// URL is fetched by [`OAuth::refresh`] (call it once at start). Errors: the file cannot be
    /// read or holds no usable key; the HTTP client cannot be built.
    pub fn new(settings: OAuthSettings, mcp_path: &str) -> Result<OAuth, String> {
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .connect_timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::custom(|attempt| {
                let url = attempt.url();
                let downgrade =
                    url.scheme() == "http" && !is_loopback(url.host_str().unwrap_or(""));
                if attempt.previous().len() >= 3 {
                    attempt.error("more than 3 redirects")
                } else if downgrade {
                    attempt.error("a redirect to plain http (keys must come over https)")
                } else {
                    attempt.follow()
                }
            }))
            .user_agent(concat!("mcp-bridge/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client for --oauth-jwks: {e}"))?;
        let public: http::Uri = settings.public_url.parse().expect("validated URL");
        let public_path = public.path().trim_end_matches('/');
        let origin = &settings.public_url[..settings.public_url.len() - public_path.len()];
        let metadata_url = format!("{origin}{METADATA_PATH}{public_path}");
        let mut metadata_paths = vec![METADATA_PATH.to_string()];
        for p in [public_path, mcp_path.trim_end_matches('/')] {
            let path = format!("{METADATA_PATH}{p}");
            if !metadata_paths.contains(&path) {
                metadata_paths.push(path);
            }
        }
        let mut doc = serde_json::json!({
            "resource": settings.public_url,
            "authorization_servers": [settings.issuer],
            "bearer_methods_supported": ["header"],
            "resource_name": "mcp-bridge",
        });
        if !settings.scopes.is_empty() {
            doc["scopes_supported"] = serde_json::json!(settings.scopes);
        }
        let oauth = OAuth {
            metadata: Bytes::from(doc.to_string()),
            metadata_url,
            metadata_paths,
            client,
            keys: RwLock::new(KeySet::default()),
            refreshing: tokio::sync::Mutex::new(()),
            settings,
        };
        if let JwksSource::File(path) = &oauth.settings.jwks {
            let bytes = std::fs::read(path)
                .map_err(|e| format!("cannot read --oauth-jwks {}: {e}", path.display()))?;
            let keys =
                parse_jwks(&bytes).map_err(|e| format!("--oauth-jwks {}: {e}", path.display()))?;
            oauth.store(Ok(keys));
        }
        Ok(oauth)
    }

    /// The settings in force.
    pub fn settings(&self) -> &OAuthSettings {
        &self.settings
    }

    /// The public URL of the metadata document (the `resource_metadata` of challenges).
    pub fn metadata_url(&self) -> &str {
        &self.metadata_url
    }

    /// True when `path` is one of the local metadata paths: the root well-known path, and its
    /// forms suffixed with the public URL's path and with the local MCP path.
    pub fn serves_metadata(&self, path: &str) -> bool {
        self.metadata_paths.iter().any(|p| p == path)
    }

    /// The Protected Resource Metadata answer (RFC 9728 section 3.2): 200 JSON for GET and
    /// HEAD, 204 for a CORS preflight, 405 otherwise. Public, so `Access-Control-Allow-Origin: *`.
    pub fn metadata_response(&self, method: &Method) -> Response<Body> {
        let mut resp = match *method {
            Method::GET => Response::new(full(self.metadata.clone())),
            Method::HEAD => Response::new(full(Bytes::new())),
            Method::OPTIONS => {
                let mut r = Response::new(full(Bytes::new()));
                *r.status_mut() = StatusCode::NO_CONTENT;
                let h = r.headers_mut();
                h.insert(
                    header::ACCESS_CONTROL_ALLOW_METHODS,
                    HeaderValue::from_static("GET, HEAD, OPTIONS"),
                );
                // SDKs send MCP-Protocol-Version with the metadata request.
                h.insert(
                    header::ACCESS_CONTROL_ALLOW_HEADERS,
                    HeaderValue::from_static("*"),
                );
                r
            }
            _ => {
                return crate::error::HttpError::method_not_allowed("GET, HEAD, OPTIONS")
                    .into_response()
            }
        };
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=300"),
        );
        resp
    }

    /// The `WWW-Authenticate` value for `rejection`, or for a request without a token (`None`):
    /// `Bearer resource_metadata="…"` plus `scope`, `error="invalid_token"` with a description,
    /// or `error="insufficient_scope"` (RFC 6750 section 3, MCP authorization 2025-11-25).
    pub fn challenge(&self, rejection: Option<&Rejection>) -> HeaderValue {
        let scope = self.settings.scopes.join(" ");
        let meta = &self.metadata_url;
        let text = match rejection {
            None | Some(Rejection::Unavailable(_)) if scope.is_empty() => {
                format!("Bearer resource_metadata=\"{meta}\"")
            }
            None | Some(Rejection::Unavailable(_)) => {
                format!("Bearer resource_metadata=\"{meta}\", scope=\"{scope}\"")
            }
            Some(Rejection::Invalid(why)) => format!(
                "Bearer error=\"invalid_token\", error_description=\"{why}\", resource_metadata=\"{meta}\""
            ),
            Some(Rejection::Scope) => format!(
                "Bearer error=\"insufficient_scope\", scope=\"{scope}\", resource_metadata=\"{meta}\""
            ),
        };
        HeaderValue::from_str(&text).expect("challenge from validated parts")
    }

    /// Validates a bearer token: a JWS signed by a key of the JWK Set, `iss` equal to
    /// `--oauth-issuer`, `aud` naming one of the audiences, `exp` in the future and `nbf` in the
    /// past (both with [`LEEWAY_SECS`]), a `sub` or `client_id`, and every `--oauth-scope`
    /// granted. Returns who the token stands for. Errors: [`Rejection`].
    pub async fn validate(&self, token: &str) -> Result<Subject, Rejection> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| {
            Rejection::Invalid("the token is not a signed JWT (alg none is not accepted)")
        })?;
        if header.alg.family() == jsonwebtoken::AlgorithmFamily::Hmac {
            return Err(Rejection::Invalid(
                "HMAC-signed tokens are not accepted; the issuer must sign with a key of its JWK Set",
            ));
        }
        match self.current().loaded {
            // No keys yet: this token has to wait for them.
            None => self.refresh().await,
            // Old keys: one request refreshes them while the others go on with what they have.
            Some(t) if t.elapsed() > KEYS_MAX_AGE => {
                if let Ok(one) = self.refreshing.try_lock() {
                    self.refresh_locked(one).await;
                }
            }
            Some(_) => {}
        }
        let kid = header.kid.as_deref();
        let mut candidates = self.candidates(kid, header.alg, false);
        if candidates.is_empty() {
            // An unknown kid may be a freshly rotated key.
            self.refresh().await;
            candidates = self.candidates(kid, header.alg, false);
        }
        if candidates.is_empty() {
            candidates = self.candidates(kid, header.alg, true);
        }
        if candidates.is_empty() {
            let set = self.current();
            return Err(match (set.keys.is_empty(), set.error) {
                (true, Some(e)) => Rejection::Unavailable(e),
                _ => Rejection::Invalid(
                    "the token is signed with a key or algorithm that is not in the issuer's JWK Set",
                ),
            });
        }
        let mut validation = Validation::new(header.alg);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.settings.issuer]);
        validation.set_audience(&self.settings.audiences);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        // With several candidate keys, a reason other than a bad signature says more.
        let mut last = Rejection::Invalid("the token's signature does not verify");
        for key in candidates {
            match jsonwebtoken::decode::<Claims>(token, &key.key, &validation) {
                Ok(data) => return self.accept(data.claims),
                Err(e) if *e.kind() == ErrorKind::InvalidSignature => {}
                Err(e) => last = Rejection::Invalid(describe(e.kind())),
            }
        }
        Err(last)
    }

    /// Checks subject and scopes of claims that passed validation.
    fn accept(&self, claims: Claims) -> Result<Subject, Rejection> {
        // Tagged, so a client id can never pass for a user's subject of the same name.
        let subject = match (claims.sub, claims.client_id) {
            (Some(sub), _) => format!("sub:{sub}"),
            (None, Some(client)) => format!("client_id:{client}"),
            (None, None) => {
                return Err(Rejection::Invalid(
                    "the token has neither sub nor client_id, so no session can be bound to it",
                ))
            }
        };
        let mut granted: Vec<String> = claims
            .scope
            .iter()
            .flat_map(|s| s.split_ascii_whitespace())
            .map(str::to_string)
            .collect();
        match claims.scp {
            Some(serde_json::Value::String(s)) => {
                granted.extend(s.split_ascii_whitespace().map(str::to_string))
            }
            Some(serde_json::Value::Array(items)) => granted.extend(
                items
                    .into_iter()
                    .filter_map(|v| v.as_str().map(str::to_string)),
            ),
            _ => {}
        }
        if self.settings.scopes.iter().any(|s| !granted.contains(s)) {
            return Err(Rejection::Scope);
        }
        Ok(Subject {
            issuer: claims.iss,
            subject,
        })
    }

    /// Keys that may have signed a token with `kid` and `alg`, only those allowing `alg`: the
    /// keys with that `kid` (every key when the token names none), or with `kidless`, the keys
    /// that have no `kid` of their own.
    fn candidates(&self, kid: Option<&str>, alg: Algorithm, kidless: bool) -> Vec<Key> {
        let set = self.current();
        set.keys
            .iter()
            .filter(|k| match kidless {
                false => kid.is_none() || k.kid.as_deref() == kid,
                true => k.kid.is_none(),
            })
            .filter(|k| k.algorithms.contains(&alg))
            .cloned()
            .collect()
    }

    fn current(&self) -> KeySet {
        self.keys.read().expect("keys lock").clone()
    }

    /// Reloads the JWK Set (fetch or file read) unless it was tried less than
    /// [`REFETCH_MIN_INTERVAL`] ago. On failure the keys in force stay and the error is kept for
    /// [`Rejection::Unavailable`]; it is logged at warn level.
    pub async fn refresh(&self) {
        let one = self.refreshing.lock().await;
        self.refresh_locked(one).await;
    }

    /// [`OAuth::refresh`] with the refresh lock held.
    async fn refresh_locked(&self, _one: tokio::sync::MutexGuard<'_, ()>) {
        if self
            .current()
            .tried
            .is_some_and(|t| t.elapsed() < REFETCH_MIN_INTERVAL)
        {
            return;
        }
        // Marked before the fetch: a request dropped mid-fetch still counts as an attempt.
        self.keys.write().expect("keys lock").tried = Some(Instant::now());
        let result = self.load().await;
        if let Err(e) = &result {
            tracing::warn!(error = %e, "cannot load the OAuth JWK Set; keeping the keys in force");
        }
        self.store(result);
    }

    /// Re-reads the JWK Set now, ignoring [`REFETCH_MIN_INTERVAL`] (SIGHUP). Returns the number
    /// of usable keys. Errors: as for the load; the keys in force stay.
    pub async fn reload(&self) -> Result<usize, String> {
        let _one = self.refreshing.lock().await;
        let result = self.load().await;
        let n = result.as_ref().map(Vec::len).map_err(Clone::clone);
        self.store(result);
        n
    }

    fn store(&self, result: Result<Vec<Key>, String>) {
        let mut set = self.keys.write().expect("keys lock");
        let now = Some(Instant::now());
        set.tried = now;
        match result {
            Ok(keys) => {
                set.keys = Arc::new(keys);
                set.loaded = now;
                set.error = None;
            }
            Err(e) => set.error = Some(e),
        }
    }

    async fn load(&self) -> Result<Vec<Key>, String> {
        let bytes = match &self.settings.jwks {
            JwksSource::File(path) => tokio::fs::read(path)
                .await
                .map_err(|e| format!("cannot read the JWK Set {}: {e}", path.display()))?,
            JwksSource::Url(url) => self.fetch(url).await?,
            JwksSource::Discover => {
                let url = self.discover_jwks_uri().await?;
                self.fetch(&url).await?
            }
        };
        parse_jwks(&bytes).map_err(|e| format!("the JWK Set at {}: {e}", self.jwks_name()))
    }

    fn jwks_name(&self) -> String {
        match &self.settings.jwks {
            JwksSource::File(p) => p.display().to_string(),
            JwksSource::Url(u) => u.clone(),
            JwksSource::Discover => format!("the jwks_uri of {}", self.settings.issuer),
        }
    }

    /// The issuer's `jwks_uri`, from its authorization server metadata (RFC 8414 section 3:
    /// the well-known suffix goes between host and path) or else its OpenID Connect discovery
    /// document. The document must name the configured issuer exactly (RFC 8414 section 3.3)
    /// and a `jwks_uri` that is https (or http on loopback). Errors: the fetch error of the
    /// last document tried, or what is wrong with the document.
    async fn discover_jwks_uri(&self) -> Result<String, String> {
        let issuer = self.settings.issuer.trim_end_matches('/');
        let uri: http::Uri = issuer.parse().map_err(|e| format!("{issuer}: {e}"))?;
        let origin = format!(
            "{}://{}",
            uri.scheme_str().unwrap_or("https"),
            uri.authority().map_or("", |a| a.as_str())
        );
        let path = uri.path().trim_end_matches('/');
        let candidates = [
            format!("{origin}/.well-known/oauth-authorization-server{path}"),
            format!("{issuer}/.well-known/openid-configuration"),
        ];
        let mut errors: Vec<String> = Vec::new();
        for url in candidates {
            let doc = match self.fetch(&url).await {
                Ok(bytes) => bytes,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            let doc: serde_json::Value = match serde_json::from_slice(&doc) {
                Ok(doc) => doc,
                Err(e) => {
                    errors.push(format!("{url} is not a metadata document: {e}"));
                    continue;
                }
            };
            if doc["issuer"].as_str() != Some(self.settings.issuer.as_str()) {
                errors.push(format!(
                    "{url} names issuer {}, not --oauth-issuer {}",
                    doc["issuer"], self.settings.issuer
                ));
                continue;
            }
            let jwks = doc["jwks_uri"]
                .as_str()
                .ok_or_else(|| format!("{url} has no jwks_uri; pass --oauth-jwks"))?;
            secure_url("the discovered jwks_uri", jwks)?;
            return Ok(jwks.to_string());
        }
        Err(format!(
            "cannot discover the issuer's keys (or pass --oauth-jwks): {}",
            errors.join("; ")
        ))
    }

    /// GETs the JSON document at `url` (a JWK Set or issuer metadata), at most
    /// [`JWKS_MAX_BYTES`].
    async fn fetch(&self, url: &str) -> Result<Vec<u8>, String> {
        let fail = |e: String| format!("cannot fetch {url}: {e}");
        let mut resp = self
            .client
            .get(url)
            .header(header::ACCEPT, "application/json, application/jwk-set+json")
            .send()
            .await
            .map_err(|e| fail(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(fail(format!("the server answered {}", resp.status())));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| fail(e.to_string()))? {
            if body.len() + chunk.len() > JWKS_MAX_BYTES {
                return Err(fail(format!("larger than {JWKS_MAX_BYTES} bytes")));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// The usable keys of a JWK Set document (RFC 7517 section 5). Keys that cannot be used for
/// verifying signatures (symmetric, encryption-only, unknown types or curves, malformed) are
/// skipped. Errors: not a JWK Set, or no usable key in it.
fn parse_jwks(bytes: &[u8]) -> Result<Vec<Key>, String> {
    #[derive(serde::Deserialize)]
    struct Set {
        keys: Vec<serde_json::Value>,
    }
    let set: Set = serde_json::from_slice(bytes)
        .map_err(|e| format!("not a JWK Set (a JSON object with a \"keys\" array): {e}"))?;
    let keys: Vec<Key> = set
        .keys
        .into_iter()
        .filter_map(|v| serde_json::from_value::<Jwk>(v).ok())
        .filter_map(|jwk| usable_key(&jwk))
        .collect();
    if keys.is_empty() {
        return Err(
            "holds no usable signing key (RSA, EC P-256 or P-384, or Ed25519 with use \"sig\")"
                .into(),
        );
    }
    Ok(keys)
}

/// The verification key of `jwk` and the algorithms it may verify, or `None` when it is not
/// an asymmetric signing key.
fn usable_key(jwk: &Jwk) -> Option<Key> {
    if matches!(jwk.common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature) {
        return None;
    }
    use Algorithm::*;
    let by_type: &[Algorithm] = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => &[RS256, RS384, RS512, PS256, PS384, PS512],
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => &[ES256],
            EllipticCurve::P384 => &[ES384],
            _ => return None,
        },
        AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => &[EdDSA],
        _ => return None,
    };
    let algorithms = match jwk.common.key_algorithm {
        None => by_type.to_vec(),
        Some(named) => {
            let named = Algorithm::try_from(named).ok()?;
            by_type.contains(&named).then(|| vec![named])?
        }
    };
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some(Key {
        kid: jwk.common.key_id.clone(),
        key,
        algorithms,
    })
}

/// The `error_description` for a failed validation (fixed text: nothing from the token).
fn describe(kind: &ErrorKind) -> &'static str {
    match kind {
        ErrorKind::ExpiredSignature => "the token has expired",
        ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)",
        ErrorKind::InvalidAudience => "the token was issued for another audience (aud)",
        ErrorKind::InvalidIssuer => "the token was issued by another issuer (iss)",
        ErrorKind::InvalidSignature => "the token's signature does not verify",
        ErrorKind::MissingRequiredClaim(c) if c == "exp" => "the token has no exp claim",
        ErrorKind::MissingRequiredClaim(c) if c == "aud" => "the token has no aud claim",
        ErrorKind::MissingRequiredClaim(_) => "the token has no iss claim",
        ErrorKind::InvalidAlgorithm => "the token's alg does not match its key",
        _ => "the token is malformed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(jwks: &str) -> Result<OAuthSettings, String> {
        OAuthSettings::new(
            "https://auth.example.com".into(),
            Some(jwks.into()),
            vec![],
            vec!["mcp:tools".into()],
            "HTTPS://MCP.Example.com/mcp/".into(),
        )
    }

    #[test]
    fn settings_canonicalize_the_public_url_and_default_the_audience_to_it() {
        let s = settings("https://auth.example.com/jwks").unwrap();
        assert_eq!(s.public_url, "https://mcp.example.com/mcp");
        assert_eq!(
            s.audiences,
            vec![
                "https://mcp.example.com/mcp".to_string(),
                "https://mcp.example.com/mcp/".to_string()
            ]
        );
        assert_eq!(
            s.jwks,
            JwksSource::Url("https://auth.example.com/jwks".into())
        );
        assert_eq!(
            settings("/etc/jwks.json").unwrap().jwks,
            JwksSource::File("/etc/jwks.json".into())
        );
        assert!(settings("http://127.0.0.1:9/jwks").is_ok(), "loopback http");
        let e = settings("http://auth.example.com/jwks").unwrap_err();
        assert!(e.contains("https"), "{e}");
        let bad_scope = OAuthSettings::new(
            "https://a.example".into(),
            Some("k.json".into()),
            vec![],
            vec!["a\"b".into()],
            "https://m.example/mcp".into(),
        );
        assert!(bad_scope.unwrap_err().contains("scope token"));
        let relative = OAuthSettings::new(
            "https://a.example".into(),
            Some("k.json".into()),
            vec![],
            vec![],
            "/mcp".into(),
        );
        assert!(relative.unwrap_err().contains("--public-url"));
    }

    #[test]
    fn metadata_is_served_on_the_root_and_path_suffixed_well_known_urls() {
        let dir = std::env::temp_dir().join(format!("mcp-bridge-oauth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("jwks.json");
        // A P-256 public key (the RFC 7517 appendix A.1 example).
        std::fs::write(
            &file,
            r#"{"keys":[{"kty":"oct","k":"c2VjcmV0"},{"kty":"EC","crv":"P-256","kid":"1",
            "x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4",
            "y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"}]}"#,
        )
        .unwrap();
        let oauth = OAuth::new(settings(file.to_str().unwrap()).unwrap(), "/mcp").unwrap();
        assert_eq!(
            oauth.metadata_url(),
            "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
        );
        assert!(oauth.serves_metadata("/.well-known/oauth-protected-resource"));
        assert!(oauth.serves_metadata("/.well-known/oauth-protected-resource/mcp"));
        assert!(!oauth.serves_metadata("/.well-known/oauth-protected-resource/other"));
        assert_eq!(oauth.current().keys.len(), 1, "the HMAC key is skipped");
        let doc: serde_json::Value = serde_json::from_slice(&oauth.metadata).unwrap();
        assert_eq!(doc["resource"], "https://mcp.example.com/mcp");
        assert_eq!(doc["authorization_servers"][0], "https://auth.example.com");
        assert_eq!(doc["scopes_supported"][0], "mcp:tools");
        let challenge = oauth.challenge(Some(&Rejection::Scope));
        assert_eq!(
            challenge.to_str().unwrap(),
            "Bearer error=\"insufficient_scope\", scope=\"mcp:tools\", resource_metadata=\"https://mcp.example.com/.well-known/oauth-protected-resource/mcp\""
        );
        std::fs::write(&file, r#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#).unwrap();
        let e = OAuth::new(settings(file.to_str().unwrap()).unwrap(), "/mcp").unwrap_err();
        assert!(e.contains("no usable signing key"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
