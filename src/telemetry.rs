//! Logging setup: `tracing` to stderr, as text or JSON (one object per line), filtered by the
//! `MCP_BRIDGE_LOG` environment variable when set, else by `--log-level` (tracing `EnvFilter`
//! directives such as `info` or `info,child::stderr=warn`).
//!
//! What is logged where: lifecycle at info; one `session{session.id, transport}` span per
//! session and one `request{rpc.method, rpc.id}` span per request inside it, whose
//! `request finished` event carries `duration_ms` and `outcome`, at debug; the child's stderr
//! under target `child::stderr` with `child.pid`; message bodies only at trace (target
//! `mcp_bridge::wire`). Tokens and `--env`/`--session-env` values are never logged.

use crate::cli::LogFormat;
use tracing_subscriber::EnvFilter;

/// The environment variable whose filter directives override `--log-level`.
pub const LOG_ENV: &str = "MCP_BRIDGE_LOG";

/// Installs the global subscriber with `MCP_BRIDGE_LOG` (when set and not empty) or `filter` as
/// the filter, in `format`. In JSON every line has `timestamp`, `level`, `target`, the event's
/// fields flattened (`message` included), `span` (the innermost span's name and fields) and
/// `spans` (all of them, outermost first). Errors: the filter does not parse (the message says
/// which source and why), or a subscriber is already installed.
pub fn init(filter: &str, format: LogFormat) -> Result<(), String> {
    let from_env = std::env::var(LOG_ENV).ok().filter(|f| !f.trim().is_empty());
    let (source, text) = match &from_env {
        Some(f) => (LOG_ENV, f.as_str()),
        None => ("--log-level", filter),
    };
    let filter = EnvFilter::try_new(text).map_err(|e| format!("{source} {text:?}: {e}"))?;
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(true)
            .try_init(),
    };
    result.map_err(|e| format!("installing the logger: {e}"))
}
