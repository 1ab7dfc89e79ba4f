//! Static bearer-token authentication (PROTOCOL.md section 5, "Static bearer deployments"):
//! tokens from `--auth-token-file` (one per line; blank lines and `#` comments skipped; reloaded
//! on SIGHUP) and from the `MCP_BRIDGE_AUTH_TOKEN` environment variable. Every request to an MCP
//! endpoint (Streamable HTTP, legacy SSE and its message path, the WebSocket upgrade) must carry
//! `Authorization: Bearer <token>` matching one of them; `/metrics` too with `--protect-metrics`;
//! `/healthz` and `/readyz` stay open. Tokens are compared in constant time (`subtle`) and never
//! logged. In this mode no OAuth metadata is served, so clients with a configured header do not
//! start an OAuth flow.

use crate::error::HttpError;
use crate::jsonrpc;
use http::{header, HeaderMap, StatusCode};
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

/// The accepted tokens and where they come from.
#[derive(Debug)]
pub struct Auth {
    /// `--auth-token-file`, re-read by [`Auth::reload`].
    file: Option<PathBuf>,
    /// `MCP_BRIDGE_AUTH_TOKEN`.
    env_token: Option<Secret>,
    /// The tokens in force (file and environment).
    tokens: RwLock<Arc<Vec<Secret>>>,
    /// Randomly keyed hasher turning a token into the principal a session is bound to.
    principals: std::collections::hash_map::RandomState,
}

impl Auth {
    /// Loads the tokens of `file` (if any) and `env_token` (if any). Authentication is on when
    /// either is given. Errors: the file cannot be read, or it holds no token and there is no
    /// environment token (a configuration that would lock everyone out by mistake).
    pub fn load(file: Option<PathBuf>, env_token: Option<Secret>) -> Result<Auth, String> {
        let env_token = env_token.filter(|t| !t.0.trim().is_empty());
        let auth = Auth {
            file,
            env_token,
            tokens: RwLock::new(Arc::new(Vec::new())),
            principals: std::collections::hash_map::RandomState::new(),
        };
        auth.reload()?;
        Ok(auth)
    }

    /// True when requests must carry a token.
    pub fn enabled(&self) -> bool {
        self.file.is_some() || self.env_token.is_some()
    }

    /// Re-reads `--auth-token-file`; returns how many tokens are now accepted. Errors as for
    /// [`Auth::load`]; the tokens in force stay unchanged then.
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
            if from_file.is_empty() && tokens.is_empty() {
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

    /// Who the request authenticates as, for binding sessions (security best practices,
    /// "Session Hijacking", PROTOCOL.md section 2.5): a keyed hash of its bearer token (the
    /// token itself is not kept), never 0; 0 when authentication is off.
    pub fn principal(&self, headers: &HeaderMap) -> u64 {
        use std::hash::BuildHasher;
        if !self.enabled() {
            return 0;
        }
        bearer(headers).map_or(0, |t| self.principals.hash_one(t).max(1))
    }

    /// Checks the request's `Authorization` header. Errors: 401 with `WWW-Authenticate:
    /// Bearer realm="mcp-bridge"` when no bearer token is sent, and with
    /// `error="invalid_token"` added when the token matches none.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), HttpError> {
        if !self.enabled() {
            return Ok(());
        }
        let Some(presented) = bearer(headers) else {
            return Err(unauthorized(
                "Bearer realm=\"mcp-bridge\"",
                "Unauthorized: send Authorization: Bearer <token> (this bridge requires a token)",
            ));
        };
        let tokens = self.tokens.read().expect("tokens lock").clone();
        // Every token is compared, so the time taken does not tell which one nearly matched.
        let mut ok = subtle::Choice::from(0);
        for t in tokens.iter() {
            ok |= t.0.as_bytes().ct_eq(presented.as_bytes());
        }
        if bool::from(ok) {
            Ok(())
        } else {
            Err(unauthorized(
                "Bearer realm=\"mcp-bridge\", error=\"invalid_token\"",
                "Unauthorized: the bearer token is not valid for this bridge",
            ))
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn unauthorized(challenge: &'static str, message: &str) -> HttpError {
    HttpError {
        www_authenticate: Some(challenge),
        ..HttpError::new(StatusCode::UNAUTHORIZED, jsonrpc::INVALID_REQUEST, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn with_auth(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn tokens_from_file_and_environment_are_accepted_others_refused() {
        let dir = std::env::temp_dir().join(format!("mcp-bridge-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("tokens");
        std::fs::write(&file, "# comment\n\n  alpha  \nbeta\n").unwrap();
        let auth = Auth::load(Some(file.clone()), Some(Secret("gamma".into()))).unwrap();
        for good in ["Bearer alpha", "bearer beta", "Bearer gamma"] {
            assert!(auth.check(&with_auth(good)).is_ok(), "{good}");
        }
        let missing = auth.check(&HeaderMap::new()).unwrap_err();
        assert_eq!(missing.status, 401);
        assert_eq!(
            missing.www_authenticate,
            Some("Bearer realm=\"mcp-bridge\"")
        );
        for bad in ["Bearer alph", "Basic alpha", "Bearer # comment", "alpha"] {
            let e = auth.check(&with_auth(bad)).unwrap_err();
            assert_eq!(e.status, 401, "{bad}");
        }
        assert!(auth
            .check(&with_auth("Bearer delta"))
            .unwrap_err()
            .www_authenticate
            .unwrap()
            .contains("invalid_token"));
        std::fs::write(&file, "delta\n").unwrap();
        assert_eq!(auth.reload().unwrap(), 2);
        assert!(auth.check(&with_auth("Bearer delta")).is_ok());
        assert!(auth.check(&with_auth("Bearer alpha")).is_err());
        std::fs::write(&file, "\n").unwrap();
        assert_eq!(auth.reload().unwrap(), 1, "the environment token remains");
        assert!(format!("{auth:?}").find("gamma").is_none(), "Debug redacts");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn no_tokens_means_no_authentication_and_an_empty_file_is_an_error() {
        let open = Auth::load(None, None).unwrap();
        assert!(!open.enabled());
        assert!(open.check(&HeaderMap::new()).is_ok());
        let file = std::env::temp_dir().join(format!("mcp-bridge-empty-{}", std::process::id()));
        std::fs::write(&file, "# nothing\n").unwrap();
        assert!(Auth::load(Some(file.clone()), None).is_err());
        std::fs::remove_file(&file).unwrap();
    }
}
