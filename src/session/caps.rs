//! What a client declared in its `initialize` (PROTOCOL.md section 3, capabilities table) and
//! the RFC 5424 log levels of `logging/setLevel` (PROTOCOL.md section 4.4).

use serde_json::Value;

/// Client capabilities the router needs to route server-to-client requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientCaps {
    /// `capabilities.sampling` present.
    pub sampling: bool,
    /// `capabilities.elicitation` present with form mode (an empty object means form).
    pub elicitation_form: bool,
    /// `capabilities.elicitation.url` present.
    pub elicitation_url: bool,
    /// `capabilities.roots` present.
    pub roots: bool,
}

impl ClientCaps {
    /// Reads the capabilities from `initialize` params (`{"capabilities": {...}, ...}`);
    /// anything missing or malformed counts as not declared.
    pub fn from_initialize(params: Option<&Value>) -> ClientCaps {
        let caps = params.and_then(|p| p.get("capabilities"));
        let get = |name: &str| caps.and_then(|c| c.get(name)).filter(|v| v.is_object());
        let elicitation = get("elicitation");
        let has = |mode: &str| elicitation.and_then(|e| e.get(mode)).is_some();
        let form =
            elicitation.is_some_and(|e| e.as_object().is_some_and(|o| o.is_empty()) || has("form"));
        ClientCaps {
            sampling: get("sampling").is_some(),
            elicitation_form: form,
            elicitation_url: has("url"),
            roots: get("roots").is_some(),
        }
    }
}

/// A syslog severity as MCP names it, least severe first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum LogLevel {
    /// `debug`
    Debug = 0,
    /// `info`
    Info,
    /// `notice`
    Notice,
    /// `warning`
    Warning,
    /// `error`
    Error,
    /// `critical`
    Critical,
    /// `alert`
    Alert,
    /// `emergency`
    Emergency,
}

const NAMES: [&str; 8] = [
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
];

impl LogLevel {
    /// The stored value meaning "never set".
    pub const UNSET: u8 = u8::MAX;

    /// Parses an MCP level name (`"debug"` … `"emergency"`).
    pub fn parse(name: &str) -> Option<LogLevel> {
        NAMES
            .iter()
            .position(|n| *n == name)
            .and_then(|i| Self::from_u8(i as u8))
    }

    /// The level for a stored value, `None` for [`LogLevel::UNSET`] or out of range.
    pub fn from_u8(v: u8) -> Option<LogLevel> {
        use LogLevel::*;
        [
            Debug, Info, Notice, Warning, Error, Critical, Alert, Emergency,
        ]
        .get(v as usize)
        .copied()
    }

    /// The MCP name of the level.
    pub fn name(self) -> &'static str {
        NAMES[self as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_declared_capabilities() {
        let p = json!({"capabilities": {"sampling": {}, "elicitation": {}, "roots": {"listChanged": true}}});
        let c = ClientCaps::from_initialize(Some(&p));
        assert!(c.sampling && c.elicitation_form && c.roots && !c.elicitation_url);
        let p = json!({"capabilities": {"elicitation": {"url": {}}}});
        let c = ClientCaps::from_initialize(Some(&p));
        assert!(c.elicitation_url && !c.elicitation_form && !c.sampling);
        assert_eq!(ClientCaps::from_initialize(None), ClientCaps::default());
    }

    #[test]
    fn levels_order_and_names() {
        assert!(LogLevel::parse("debug").unwrap() < LogLevel::parse("error").unwrap());
        assert_eq!(LogLevel::parse("warning").unwrap().name(), "warning");
        assert_eq!(LogLevel::parse("verbose"), None);
        assert_eq!(LogLevel::from_u8(LogLevel::UNSET), None);
    }
}
