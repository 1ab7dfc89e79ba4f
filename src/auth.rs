//! Authentication of MCP requests (PROTOCOL.md section 5).
//!
//! Two modes, usable together:
//! - Static bearer tokens: from `--auth-token-file` (one per line; blank lines and `#` comments
//!   skipped; reloaded on SIGHUP) and the `MCP_BRIDGE_AUTH_TOKEN` environment variable, compared
//!   in constant time. Alone, this mode serves no OAuth metadata, so clients with a configured
//!   header do not start an OAuth flow (section 5, "Static bearer deployments").
//! - OAuth 2.1 resource server ([`crate::oauth`]): JWT access tokens from `--oauth-issuer`.
//!
//! Every request to an MCP endpoint (Streamable HTTP, legacy SSE and its message path, the
//! WebSocket upgrade) must carry `Authorization: Bearer <token>`; `/metrics` too with
//! `--protect-metrics`; `/healthz` and `/readyz` stay open. A request that passes is tagged with
//! its [`Principal`], to which sessions are bound. Tokens are never logged and never passed on.

use crate::error::HttpError;
use crate::jsonrpc;
use crate::oauth::{OAuth, Rejection};
use http::{header, HeaderMap, HeaderValue, StatusCode};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use subtle::ConstantTimeEq;

/// The environment variable holding one bearer token; removed from the child's environment.
pub const TOKEN_ENV: &str = "MCP_BRIDGE_AUTH_TOKEN";

/// A secret string whose `Debug` output never shows the value.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Who a request authenticated as: a keyed hash of its static token, or of the issuer and
/// subject of its OAuth token; `Principal(0)` when authentication is off. Sessions are bound to
/// it (security best practices, "Session Hijacking"; PROTOCOL.md section 2.5). Stored in the
/// request's extensions by the router.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Principal(pub u64);

impl Principal {
    /// The principal a request was tagged with, `Principal(0)` when none.
    pub fn of(extensions: &http::Extensions) -> Principal {
        extensions.get::<Principal>().copied().unwrap_or_default()
    }
}

/// The accepted tokens and where they come from.
#[derive(Debug)]
pub struct Auth {
    /// `--auth-token-file`, re-read by [`Auth::reload`].
    file: Option<PathBuf>,
    /// `MCP_BRIDGE_AUTH_TOKEN`.
    env_token: Option<Secret>,
    /// The tokens in force (file and environment).
    tokens: RwLock<Arc<Vec<Secret>>>,
    /// HMAC key turning a token into the principal a session is bound to: derived from
    /// `MCP_BRIDGE_SESSION_SECRET` (so that every replica derives the same principal), random
    /// otherwise.
    principals: hmac::Hmac<sha2::Sha256>,
    /// OAuth resource-server mode, when `--oauth-issuer` is set.
    oauth: Option<OAuth>,
}

impl Auth {
    /// Loads the tokens of `file` (if any) and `env_token` (if any), with `oauth` as the OAuth
    /// resource server (if any). Authentication is on when any is given. Principals are keyed by
    /// `session_secret` when given (the same on every replica sharing it), by a random key
    /// otherwise. Errors: the file cannot be read, or it holds no token and there is no
    /// environment token (a configuration that would lock everyone out by mistake).
    pub fn load(
        file: Option<PathBuf>,
        env_token: Option<Secret>,
        oauth: Option<OAuth>,
        session_secret: Option<&Secret>,
    ) -> Result<Auth, String> {
        let env_token = env_token.filter(|t| !t.0.trim().is_empty());
        let principals = match session_secret {
            Some(secret) => {
                crate::session::seal::derive(secret.0.as_bytes(), "mcp-bridge principal v1")
            }
            None => {
                let mut key = [0u8; 32];
                getrandom::fill(&mut key).expect("the operating system CSPRNG is available");
                crate::session::seal::derive(&key, "mcp-bridge principal v1")
            }
        };
        let auth = Auth {
            file,
            env_token,
            tokens: RwLock::new(Arc::new(Vec::new())),
            principals,
            oauth,
        };
        auth.reload()?;
        Ok(auth)
    }

    /// True when requests must carry a token.
    pub fn enabled(&self) -> bool {
        self.file.is_some() || self.env_token.is_some() || self.oauth.is_some()
    }

    /// The OAuth resource server, when configured.
    pub fn oauth(&self) -> Option<&OAuth> {
        self.oauth.as_ref()
    }

    /// Re-reads `--auth-token-file`; returns how many static tokens are now accepted. Errors as
    /// for [`Auth::load`]; the tokens in force stay unchanged then.
    pub fn reload(&self) -> Result<usize, String> {
        let mut tokens: Vec<Secret> = self.env_token.iter().cloned().collect();
        if let Some(path) = &self.file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read --auth-token-file {}: {e}", path.display()))?;
            let from_file: Vec<Secret> = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(|l| Secret(l.to_string()))
                .collect();
            if from_file.is_empty() && tokens.is_empty() && self.oauth.is_none() {
                return Err(format!(
                    "--auth-token-file {} holds no token (one per line)",
                    path.display()
                ));
            }
            tokens.extend(from_file);
        }
        let n = tokens.len();
        *self.tokens.write().expect("tokens lock") = Arc::new(tokens);
        Ok(n)
    }

    /// Checks the request's `Authorization` header and returns who it authenticates as
    /// ([`Principal`]; `Principal(0)` when authentication is off). A static token is tried
    /// first, then OAuth validation ([`OAuth::validate`]). Errors:
    /// - 401 when no bearer token is sent: `WWW-Authenticate: Bearer realm="mcp-bridge"` in
    ///   static mode, `Bearer resource_metadata="…"` with OAuth;
    /// - 401 with `error="invalid_token"` when the token is not accepted;
    /// - 403 with `error="insufficient_scope"` when an OAuth token lacks a required scope;
    /// - 503 when the OAuth keys could not be loaded at all.
    pub async fn check(&self, headers: &HeaderMap) -> Result<Principal, HttpError> {
        if !self.enabled() {
            return Ok(Principal(0));
        }
        let Some(presented) = bearer(headers) else {
            return Err(match &self.oauth {
                Some(o) => unauthorized(
                    StatusCode::UNAUTHORIZED,
                    o.challenge(None),
                    "Unauthorized: send Authorization: Bearer <access token> (OAuth; the resource metadata URL is in WWW-Authenticate)".into(),
                ),
                None => unauthorized(
                    StatusCode::UNAUTHORIZED,
                    HeaderValue::from_static("Bearer realm=\"mcp-bridge\""),
                    "Unauthorized: send Authorization: Bearer <token> (this bridge requires a token)".into(),
                ),
            });
        };
        if self.static_match(presented) {
            return Ok(self.principal(&[b"token", presented.as_bytes()]));
        }
        let Some(oauth) = &self.oauth else {
            return Err(unauthorized(
                StatusCode::UNAUTHORIZED,
                HeaderValue::from_static("Bearer realm=\"mcp-bridge\", error=\"invalid_token\""),
                "Unauthorized: the bearer token is not valid for this bridge".into(),
            ));
        };
        match oauth.validate(presented).await {
            Ok(s) => Ok(self.principal(&[b"oauth", s.issuer.as_bytes(), s.subject.as_bytes()])),
            Err(r) => {
                tracing::debug!(reason = ?r, "bearer token refused");
                let challenge = oauth.challenge(Some(&r));
                Err(match r {
                    Rejection::Invalid(why) => unauthorized(
                        StatusCode::UNAUTHORIZED,
                        challenge,
                        format!("Unauthorized: {why}"),
                    ),
                    Rejection::Scope => unauthorized(
                        StatusCode::FORBIDDEN,
                        challenge,
                        format!(
                            "Forbidden: the token must grant the scopes {:?}",
                            oauth.settings().scopes.join(" ")
                        ),
                    ),
                    // The reason (paths, URLs) is for the operator's log, not for callers.
                    Rejection::Unavailable(e) => {
                        tracing::warn!(error = %e, "cannot check a bearer token: no OAuth keys");
                        HttpError {
                            www_authenticate: Some(Box::new(challenge)),
                            ..HttpError::unavailable(
                                jsonrpc::INTERNAL_ERROR,
                                "Service Unavailable: the bridge cannot check tokens yet (its OAuth signing keys could not be loaded; the bridge's log says why)",
                                5,
                            )
                        }
                    }
                })
            }
        }
    }

    /// True when `presented` equals one of the static tokens. Every token is compared, so the
    /// time taken does not tell which one nearly matched.
    fn static_match(&self, presented: &str) -> bool {
        let tokens = self.tokens.read().expect("tokens lock").clone();
        let mut ok = subtle::Choice::from(0);
        for t in tokens.iter() {
            ok |= t.0.as_bytes().ct_eq(presented.as_bytes());
        }
        bool::from(ok)
    }

    /// The principal for the identity made of `parts`: the first 8 bytes of their keyed
    /// HMAC-SHA256 (each part length-prefixed; the token itself is not kept), never 0.
    fn principal(&self, parts: &[&[u8]]) -> Principal {
        use hmac::Mac;
        let mut mac = self.principals.clone();
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        let digest = mac.finalize().into_bytes();
        let head: [u8; 8] = digest[..8].try_into().expect("32-byte digest");
        Principal(u64::from_be_bytes(head).max(1))
    }
}

/// The token of an `Authorization: Bearer <token>` header.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn unauthorized(status: StatusCode, challenge: HeaderValue, message: String) -> HttpError {
    HttpError {
        www_authenticate: Some(Box::new(challenge)),
        ..HttpError::new(status, jsonrpc::INVALID_REQUEST, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_auth(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        h
    }

    #[tokio::test]
    async fn tokens_from_file_and_environment_are_accepted_others_refused() {
        let dir = std::env::temp_dir().join(format!("mcp-bridge-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("tokens");
        std::fs::write(&file, "# comment\n\n  alpha  \nbeta\n").unwrap();
        let auth =
            Auth::load(Some(file.clone()), Some(Secret("gamma".into())), None, None).unwrap();
        for good in ["Bearer alpha", "bearer beta", "Bearer gamma"] {
            assert!(auth.check(&with_auth(good)).await.is_ok(), "{good}");
        }
        let missing = auth.check(&HeaderMap::new()).await.unwrap_err();
        assert_eq!(missing.status, 401);
        assert_eq!(
            missing.www_authenticate,
            Some(Box::new(HeaderValue::from_static(
                "Bearer realm=\"mcp-bridge\""
            )))
        );
        for bad in ["Bearer alph", "Basic alpha", "Bearer # comment", "alpha"] {
            let e = auth.check(&with_auth(bad)).await.unwrap_err();
            assert_eq!(e.status, 401, "{bad}");
        }
        assert!(auth
            .check(&with_auth("Bearer delta"))
            .await
            .unwrap_err()
            .www_authenticate
            .unwrap()
            .to_str()
            .unwrap()
            .contains("invalid_token"));
        std::fs::write(&file, "delta\n").unwrap();
        assert_eq!(auth.reload().unwrap(), 2);
        assert!(auth.check(&with_auth("Bearer delta")).await.is_ok());
        assert!(auth.check(&with_auth("Bearer alpha")).await.is_err());
        std::fs::write(&file, "\n").unwrap();
        assert_eq!(auth.reload().unwrap(), 1, "the environment token remains");
        assert!(format!("{auth:?}").find("gamma").is_none(), "Debug redacts");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn no_tokens_means_no_authentication_and_an_empty_file_is_an_error() {
        let open = Auth::load(None, None, None, None).unwrap();
        assert!(!open.enabled());
        assert!(open.check(&HeaderMap::new()).await.is_ok());
        let file = std::env::temp_dir().join(format!("mcp-bridge-empty-{}", std::process::id()));
        std::fs::write(&file, "# nothing\n").unwrap();
        assert!(Auth::load(Some(file.clone()), None, None, None).is_err());
        std::fs::remove_file(&file).unwrap();
    }
}
