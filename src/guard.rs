//! DNS-rebinding protection for the MCP endpoint (PROTOCOL.md section 2.2): a `Host` allow-list
//! (421 otherwise) and `Origin` validation (403 for a present but foreign `Origin`).
//!
//! Defaults: on a loopback bind only loopback host names (`localhost`, `127.0.0.1`, `[::1]`, any
//! port) are valid `Host`s; on other binds any `Host` is. An `Origin` must be the request's own
//! `Host` (same origin) or, on loopback binds, a loopback origin. `--allowed-hosts` replaces the
//! `Host` default; `--allowed-origins` adds origins to the `Origin` default.

use crate::error::HttpError;
use crate::jsonrpc;
use http::{header, HeaderMap, StatusCode};
use std::net::SocketAddr;

/// Host names that mean "this machine".
const LOOPBACK_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "[::1]"];

/// Request-header checks derived from the listen address and the allow-lists.
#[derive(Debug, Clone)]
pub struct Guard {
    /// Bound to a loopback address: loopback origins are valid, and by default only loopback
    /// host names.
    loopback: bool,
    /// `--allowed-hosts`: host names (any port) or `host:port` authorities, lowercase; `*` allows
    /// any. Empty: the default described in the module doc.
    hosts: Vec<String>,
    /// `--allowed-origins`: `scheme://host[:port]` origins, lowercase; `*` allows any.
    origins: Vec<String>,
}

impl Guard {
    /// The guard with the default allow-lists for a bridge listening on `listen`.
    pub fn new(listen: SocketAddr) -> Guard {
        Guard::with_allow_lists(listen, &[], &[])
    }

    /// The guard for a bridge listening on `listen` with `--allowed-hosts` `hosts` (host names
    /// matching any port, or `host:port`, or `*`) and `--allowed-origins` `origins`
    /// (`scheme://host[:port]` or `*`). Matching ignores ASCII case and a trailing `/`.
    pub fn with_allow_lists(listen: SocketAddr, hosts: &[String], origins: &[String]) -> Guard {
        let norm = |v: &[String]| {
            v.iter()
                .map(|s| s.trim().trim_end_matches('/').to_ascii_lowercase())
                .filter(|s| !s.is_empty())
                .collect()
        };
        Guard {
            loopback: listen.ip().is_loopback(),
            hosts: norm(hosts),
            origins: norm(origins),
        }
    }

    /// True when `host` (a `Host` header value) may be served.
    fn host_allowed(&self, host: &str) -> bool {
        if self.hosts.is_empty() {
            return !self.loopback || host.is_empty() || is_loopback_authority(host);
        }
        let host = host.to_ascii_lowercase();
        let name = split_port(&host);
        self.hosts
            .iter()
            .any(|h| h == "*" || *h == host || *h == name)
    }

    /// Checks `Host` and `Origin`. Errors: 421 for a `Host` that is not this machine (loopback
    /// binds), 403 for an `Origin` that is neither this machine (loopback binds) nor the
    /// request's own `Host`.
    ///
    /// The host is the `Host` header, or the request target's authority (`authority`, as
    /// HTTP/2 requests carry it) when there is no `Host` header.
    pub fn check(&self, headers: &HeaderMap, authority: Option<&str>) -> Result<(), HttpError> {
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .or(authority)
            .unwrap_or("");
        if !self.host_allowed(host) {
            let why = if self.hosts.is_empty() {
                "mcp-bridge listens on loopback; allow other names with --allowed-hosts"
            } else {
                "it is not in --allowed-hosts"
            };
            return Err(HttpError::new(
                StatusCode::MISDIRECTED_REQUEST,
                jsonrpc::INVALID_REQUEST,
                format!("Misdirected Request: Host {host:?} is not this server ({why})"),
            ));
        }
        let Some(origin) = headers.get(header::ORIGIN) else {
            return Ok(());
        };
        let origin = origin.to_str().unwrap_or("");
        let authority = origin.split_once("://").map(|(_, rest)| rest).unwrap_or("");
        let same_origin = !host.is_empty() && authority.eq_ignore_ascii_case(host);
        let listed = {
            let origin = origin.trim_end_matches('/').to_ascii_lowercase();
            self.origins.iter().any(|o| o == "*" || *o == origin)
        };
        if same_origin || listed || (self.loopback && is_loopback_authority(authority)) {
            return Ok(());
        }
        Err(HttpError::new(
            StatusCode::FORBIDDEN,
            jsonrpc::INVALID_REQUEST,
            format!(
                "Forbidden: Origin {origin:?} is not allowed (allow it with --allowed-origins)"
            ),
        ))
    }
}

/// The host part of an authority (`host`, `host:port`, `[v6]`, `[v6]:port`).
fn split_port(authority: &str) -> &str {
    match authority.rsplit_once(':') {
        Some((h, port))
            if !h.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit())
                && !authority.ends_with(']') =>
        {
            h
        }
        _ => authority,
    }
}

/// True for `localhost`, `127.0.0.1` or `[::1]`, with or without a port.
fn is_loopback_authority(authority: &str) -> bool {
    let host = split_port(authority);
    LOOPBACK_NAMES.iter().any(|n| n.eq_ignore_ascii_case(host))
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Guard {
        fn check_h(&self, headers: &HeaderMap) -> Result<(), HttpError> {
            self.check(headers, None)
        }
    }
    use http::HeaderValue;

    fn headers(host: &str, origin: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_str(host).unwrap());
        if let Some(o) = origin {
            h.insert(header::ORIGIN, HeaderValue::from_str(o).unwrap());
        }
        h
    }

    #[test]
    fn loopback_binds_accept_only_loopback_hosts_and_origins() {
        let g = Guard::new("127.0.0.1:8080".parse().unwrap());
        assert!(g.check_h(&headers("127.0.0.1:8080", None)).is_ok());
        assert!(g
            .check_h(&headers("localhost", Some("http://localhost:3000")))
            .is_ok());
        assert!(g
            .check_h(&headers("[::1]:8080", Some("http://[::1]:8080")))
            .is_ok());
        assert_eq!(
            g.check_h(&headers("evil.example.com", None))
                .unwrap_err()
                .status,
            421
        );
        let e = g
            .check_h(&headers("localhost:8080", Some("http://evil.example.com")))
            .unwrap_err();
        assert_eq!(e.status, 403);
    }

    #[test]
    fn without_a_host_header_the_request_authority_is_checked() {
        let g = Guard::new("127.0.0.1:8080".parse().unwrap());
        let none = HeaderMap::new();
        assert_eq!(
            g.check(&none, Some("evil.example.com")).unwrap_err().status,
            421,
            "an HTTP/2 request names its host in the authority"
        );
        assert!(g.check(&none, Some("127.0.0.1:8080")).is_ok());
    }

    #[test]
    fn allow_lists_replace_the_host_default_and_extend_origins() {
        let list = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let g = Guard::with_allow_lists(
            "127.0.0.1:8080".parse().unwrap(),
            &list(&["mcp.example.com", "Other.Example:8443"]),
            &list(&["https://App.example.com/"]),
        );
        assert!(g.check_h(&headers("mcp.example.com:8080", None)).is_ok());
        assert!(g.check_h(&headers("other.example:8443", None)).is_ok());
        assert_eq!(
            g.check_h(&headers("other.example:9999", None))
                .unwrap_err()
                .status,
            421
        );
        assert_eq!(
            g.check_h(&headers("localhost:8080", None))
                .unwrap_err()
                .status,
            421,
            "the list replaces the loopback default"
        );
        assert!(g
            .check_h(&headers("mcp.example.com", Some("https://app.example.com")))
            .is_ok());
        assert!(g
            .check_h(&headers("mcp.example.com", Some("http://localhost:3000")))
            .is_ok());
        assert_eq!(
            g.check_h(&headers("mcp.example.com", Some("https://evil.example")))
                .unwrap_err()
                .status,
            403
        );
        let any =
            Guard::with_allow_lists("0.0.0.0:1".parse().unwrap(), &list(&["*"]), &list(&["*"]));
        assert!(any
            .check_h(&headers("x.example", Some("https://y.example")))
            .is_ok());
    }

    #[test]
    fn public_binds_accept_any_host_but_only_same_origin() {
        let g = Guard::new("0.0.0.0:8080".parse().unwrap());
        assert!(g.check_h(&headers("mcp.example.com", None)).is_ok());
        assert!(g
            .check_h(&headers("mcp.example.com", Some("https://mcp.example.com")))
            .is_ok());
        assert_eq!(
            g.check_h(&headers(
                "mcp.example.com",
                Some("https://evil.example.com")
            ))
            .unwrap_err()
            .status,
            403
        );
    }
}
