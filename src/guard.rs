//! DNS-rebinding protection for the MCP endpoint (PROTOCOL.md section 2.2): a `Host` allow-list
//! when the bridge listens on loopback (421 otherwise), and `Origin` validation (403 for a
//! present but foreign `Origin`). The allow-lists become configurable with the security work;
//! these are the defaults.

use crate::error::HttpError;
use crate::jsonrpc;
use http::{header, HeaderMap, StatusCode};
use std::net::SocketAddr;

/// Host names that mean "this machine".
const LOOPBACK_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "[::1]"];

/// Request-header checks derived from the listen address.
#[derive(Debug, Clone)]
pub struct Guard {
    /// Bound to a loopback address: only loopback host names are valid.
    loopback: bool,
}

impl Guard {
    /// The guard for a bridge listening on `listen`.
    pub fn new(listen: SocketAddr) -> Guard {
        Guard {
            loopback: listen.ip().is_loopback(),
        }
    }

    /// Checks `Host` and `Origin`. Errors: 421 for a `Host` that is not this machine (loopback
    /// binds), 403 for an `Origin` that is neither this machine (loopback binds) nor the
    /// request's own `Host`.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), HttpError> {
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if self.loopback && !host.is_empty() && !is_loopback_authority(host) {
            return Err(HttpError::new(
                StatusCode::MISDIRECTED_REQUEST,
                jsonrpc::INVALID_REQUEST,
                format!("Misdirected Request: Host {host:?} is not this server (mcp-bridge listens on loopback)"),
            ));
        }
        let Some(origin) = headers.get(header::ORIGIN) else {
            return Ok(());
        };
        let origin = origin.to_str().unwrap_or("");
        let authority = origin.split_once("://").map(|(_, rest)| rest).unwrap_or("");
        let same_origin = !host.is_empty() && authority.eq_ignore_ascii_case(host);
        if same_origin || (self.loopback && is_loopback_authority(authority)) {
            return Ok(());
        }
        Err(HttpError::new(
            StatusCode::FORBIDDEN,
            jsonrpc::INVALID_REQUEST,
            format!("Forbidden: Origin {origin:?} is not allowed"),
        ))
    }
}

/// True for `localhost`, `127.0.0.1` or `[::1]`, with or without a port.
fn is_loopback_authority(authority: &str) -> bool {
    let host = match authority.rsplit_once(':') {
        Some((h, port))
            if !h.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit())
                && !authority.ends_with(']') =>
        {
            h
        }
        _ => authority,
    };
    LOOPBACK_NAMES.iter().any(|n| n.eq_ignore_ascii_case(host))
}

#[cfg(test)]
mod tests {
    use super::*;
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
        assert!(g.check(&headers("127.0.0.1:8080", None)).is_ok());
        assert!(g
            .check(&headers("localhost", Some("http://localhost:3000")))
            .is_ok());
        assert!(g
            .check(&headers("[::1]:8080", Some("http://[::1]:8080")))
            .is_ok());
        assert_eq!(
            g.check(&headers("evil.example.com", None))
                .unwrap_err()
                .status,
            421
        );
        let e = g
            .check(&headers("localhost:8080", Some("http://evil.example.com")))
            .unwrap_err();
        assert_eq!(e.status, 403);
    }

    #[test]
    fn public_binds_accept_any_host_but_only_same_origin() {
        let g = Guard::new("0.0.0.0:8080".parse().unwrap());
        assert!(g.check(&headers("mcp.example.com", None)).is_ok());
        assert!(g
            .check(&headers("mcp.example.com", Some("https://mcp.example.com")))
            .is_ok());
        assert_eq!(
            g.check(&headers(
                "mcp.example.com",
                Some("https://evil.example.com")
            ))
            .unwrap_err()
            .status,
            403
        );
    }
}
