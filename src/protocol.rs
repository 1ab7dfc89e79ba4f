//! MCP protocol versions the bridge speaks and the per-session version negotiation
//! (PROTOCOL.md sections 2.6 and 3, "Version negotiation").

/// Protocol versions a session may negotiate, newest first. `2024-11-05` clients use the same
/// handshake; `2025-03-26` is the only one whose clients may send JSON-RPC batches.
pub const SUPPORTED_VERSIONS: [&str; 4] = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

/// The newest version the bridge speaks; sent to the child in its own `initialize`.
pub const LATEST_VERSION: &str = SUPPORTED_VERSIONS[0];

/// The only version whose clients may POST JSON-RPC batches (PROTOCOL.md section 2.3).
pub const BATCH_VERSION: &str = "2025-03-26";

/// Negotiates a session's version from the `protocolVersion` its `initialize` asked for: the same
/// version when supported, otherwise the newest supported one (the spec's rule; the client then
/// decides whether to disconnect). Returns a `'static` entry of [`SUPPORTED_VERSIONS`].
pub fn negotiate(requested: Option<&str>) -> &'static str {
    requested.and_then(supported).unwrap_or(LATEST_VERSION)
}

/// Returns the `'static` copy of `version` when the bridge supports it, else `None`.
/// Used to validate the `MCP-Protocol-Version` request header (400 when unsupported).
pub fn supported(version: &str) -> Option<&'static str> {
    SUPPORTED_VERSIONS.iter().copied().find(|v| *v == version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoes_supported_versions_and_falls_back_to_latest() {
        assert_eq!(negotiate(Some("2025-03-26")), "2025-03-26");
        assert_eq!(negotiate(Some("2024-11-05")), "2024-11-05");
        assert_eq!(negotiate(Some("1999-01-01")), LATEST_VERSION);
        assert_eq!(negotiate(None), LATEST_VERSION);
        assert!(supported("2025-06-18").is_some());
        assert!(supported("2026-07-28").is_none());
    }
}
