//! CORS for browser clients (`--cors-origin`, off by default): responses of the MCP endpoints
//! to an allowed origin carry `Access-Control-Allow-Origin` and expose `Mcp-Session-Id`,
//! `Mcp-Protocol-Version` and `WWW-Authenticate`, and preflight `OPTIONS` requests are answered
//! with 204 (Fetch standard, "CORS protocol"). Allowed CORS origins also pass the `Origin` check of
//! [`crate::guard`].

use crate::transport::{empty, Body};
use http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode};

/// Request headers a browser MCP client sends (`Access-Control-Allow-Headers`).
const ALLOW_HEADERS: &str =
    "authorization, content-type, accept, mcp-session-id, mcp-protocol-version, last-event-id";
/// Response headers scripts may read (`Access-Control-Expose-Headers`).
const EXPOSE_HEADERS: &str = "mcp-session-id, mcp-protocol-version, www-authenticate";
/// Methods of the MCP endpoints.
const ALLOW_METHODS: &str = "GET, POST, DELETE, OPTIONS";
/// How long a browser may cache a preflight answer, in seconds.
const MAX_AGE_SECS: u32 = 600;

/// The CORS policy: the origins allowed (lowercase, no trailing `/`; `*` for any).
#[derive(Debug, Clone, Default)]
pub struct Cors {
    origins: Vec<String>,
}

impl Cors {
    /// A policy allowing `origins` (`scheme://host[:port]` or `*`); empty: CORS off.
    pub fn new(origins: &[String]) -> Cors {
        Cors {
            origins: origins
                .iter()
                .map(|o| o.trim().trim_end_matches('/').to_ascii_lowercase())
                .filter(|o| !o.is_empty())
                .collect(),
        }
    }

    /// The request's `Origin` when CORS is on and it is allowed.
    pub fn allowed_origin(&self, headers: &HeaderMap) -> Option<HeaderValue> {
        let origin = headers.get(header::ORIGIN)?;
        let text = origin
            .to_str()
            .ok()?
            .trim_end_matches('/')
            .to_ascii_lowercase();
        self.origins
            .iter()
            .any(|o| o == "*" || *o == text)
            .then(|| origin.clone())
    }

    /// The answer to a CORS preflight (`OPTIONS` with `Access-Control-Request-Method`) from an
    /// allowed origin: 204 with the allowed methods and headers. `None` for anything else.
    pub fn preflight(&self, method: &Method, headers: &HeaderMap) -> Option<Response<Body>> {
        if method != Method::OPTIONS || !headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
        {
            return None;
        }
        let origin = self.allowed_origin(headers)?;
        let mut resp = Response::new(empty());
        *resp.status_mut() = StatusCode::NO_CONTENT;
        let h = resp.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(ALLOW_METHODS),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(ALLOW_HEADERS),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from(MAX_AGE_SECS),
        );
        h.insert(header::VARY, HeaderValue::from_static("origin"));
        Some(resp)
    }

    /// Adds the CORS response headers for `origin` (from [`Cors::allowed_origin`]).
    pub fn decorate(&self, origin: Option<HeaderValue>, resp: &mut Response<Body>) {
        let Some(origin) = origin else { return };
        let h = resp.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSE_HEADERS),
        );
        h.append(header::VARY, HeaderValue::from_static("origin"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(o: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ORIGIN, HeaderValue::from_str(o).unwrap());
        h
    }

    #[test]
    fn only_listed_origins_get_cors_headers_and_preflights() {
        let cors = Cors::new(&["https://App.example.com/".to_string()]);
        assert!(cors
            .allowed_origin(&origin("https://app.example.com"))
            .is_some());
        assert!(cors
            .allowed_origin(&origin("https://evil.example"))
            .is_none());
        let mut pre = origin("https://app.example.com");
        assert!(
            cors.preflight(&Method::OPTIONS, &pre).is_none(),
            "OPTIONS without Access-Control-Request-Method is no preflight"
        );
        pre.insert(
            header::ACCESS_CONTROL_REQUEST_METHOD,
            HeaderValue::from_static("POST"),
        );
        let resp = cors.preflight(&Method::OPTIONS, &pre).unwrap();
        assert_eq!(resp.status(), 204);
        assert!(resp.headers()[header::ACCESS_CONTROL_ALLOW_HEADERS]
            .to_str()
            .unwrap()
            .contains("mcp-session-id"));
        assert!(Cors::new(&[])
            .allowed_origin(&origin("https://app.example.com"))
            .is_none());
    }
}
