//! Flags of `mcp-bridge connect` and their validation into a [`ConnectConfig`] (two stages, as
//! for the daemon: clap types here, typed values with cross-field checks in
//! [`ConnectConfig::from_cli`]). Nothing else in `connect` reads argv, files or the environment.

use super::ConnectError;
use crate::cli::LogFormat;
use clap::{Parser, ValueEnum};
use http::{HeaderMap, HeaderName, HeaderValue};
use std::path::PathBuf;
use std::time::Duration;

/// Default time to open a connection to the remote (TCP and TLS) and to hear back on the first
/// `initialize`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default largest message accepted from either side, in bytes (one stdin line, one JSON body
/// or one SSE event).
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// Which remote transport to speak.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RemoteTransport {
    /// Streamable HTTP, falling back to HTTP+SSE when the `initialize` POST gets 400, 404 or 405
    /// (PROTOCOL.md section 2.8). `ws://` and `wss://` URLs mean WebSocket.
    Auto,
    /// Streamable HTTP (MCP 2025-03-26 and later).
    StreamableHttp,
    /// HTTP+SSE (MCP 2024-11-05): the URL is the SSE endpoint.
    Sse,
    /// WebSocket, subprotocol `mcp`, one JSON-RPC message per text frame.
    Ws,
}

/// `mcp-bridge connect URL [OPTIONS]`: a stdio MCP server that forwards to a remote one.
#[derive(Parser, Debug)]
#[command(
    name = "mcp-bridge connect",
    bin_name = "mcp-bridge connect",
    about = "Be a local stdio MCP server that forwards every message to a remote MCP server \
             (Streamable HTTP, HTTP+SSE or WebSocket). Reads newline-delimited JSON-RPC on stdin, \
             writes the remote's messages to stdout, logs to stderr."
)]
pub struct ConnectCli {
    /// The remote MCP endpoint, e.g. https://host/mcp, https://host/sse or wss://host/ws.
    #[arg(value_name = "URL")]
    pub url: String,
    /// Remote transport; `auto` tries Streamable HTTP and falls back to HTTP+SSE.
    #[arg(long, value_enum, default_value_t = RemoteTransport::Auto)]
    pub transport: RemoteTransport,
    /// Extra HTTP header for every request to the remote, "Name: value" (repeatable).
    #[arg(long = "header", short = 'H', value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
    /// File holding a bearer token, sent as `Authorization: Bearer TOKEN` (surrounding
    /// whitespace is trimmed). Keeps the token out of argv and the client's config file. Read
    /// again when the remote refuses the token, so a rotated token needs no restart.
    #[arg(long, value_name = "PATH")]
    pub bearer_token_file: Option<PathBuf>,
    /// Time allowed to connect to the remote and for it to answer `initialize` (e.g. 30s).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Largest message accepted from stdin or from the remote, in bytes.
    #[arg(long, default_value_t = DEFAULT_MAX_MESSAGE_BYTES)]
    pub max_message_bytes: usize,
    /// Log filter for stderr (tracing EnvFilter directives); MCP_BRIDGE_LOG overrides it.
    #[arg(long, default_value = "info")]
    pub log_level: String,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// Validated settings of `mcp-bridge connect`.
#[derive(Debug, Clone)]
pub struct ConnectConfig {
    /// The remote endpoint (http, https, ws or wss).
    pub url: reqwest::Url,
    /// The transport to speak; `Auto` only for http(s) URLs (ws URLs become `Ws`).
    pub transport: RemoteTransport,
    /// Headers for every request: `--header` values and the bearer token.
    pub headers: HeaderMap,
    /// `--bearer-token-file`, re-read when the remote refuses the token (see
    /// [`super::http::Credentials`]).
    pub bearer_token_file: Option<std::path::PathBuf>,
    /// Connect and `initialize` timeout.
    pub timeout: Duration,
    /// Largest message in bytes, both directions.
    pub max_message_bytes: usize,
}

/// Headers the transport sets itself; `--header` may not override them.
const RESERVED_HEADERS: [&str; 6] = [
    "mcp-session-id",
    "mcp-protocol-version",
    "last-event-id",
    "content-type",
    "accept",
    "content-length",
];

impl ConnectConfig {
    /// Validates `cli`: the URL parses and is http(s) or ws(s) and fits the transport, every
    /// `--header` is `Name: value` with a legal name and value and not one the transport owns,
    /// the token file is readable and holds one non-empty line, the sizes are non-zero.
    /// Errors: [`ConnectError::Usage`] saying which flag and why.
    pub fn from_cli(cli: &ConnectCli) -> Result<ConnectConfig, ConnectError> {
        let usage = |m: String| ConnectError::Usage(m);
        let url = reqwest::Url::parse(&cli.url)
            .map_err(|e| usage(format!("URL {:?} does not parse: {e}", cli.url)))?;
        let ws = matches!(url.scheme(), "ws" | "wss");
        if !ws && !matches!(url.scheme(), "http" | "https") {
            return Err(usage(format!(
                "URL {:?}: the scheme must be http, https, ws or wss",
                cli.url
            )));
        }
        let transport = match (cli.transport, ws) {
            (RemoteTransport::Auto | RemoteTransport::Ws, true) => RemoteTransport::Ws,
            (RemoteTransport::Ws, false) => {
                return Err(usage("--transport ws needs a ws:// or wss:// URL".into()))
            }
            (t, true) => {
                return Err(usage(format!(
                    "--transport {} needs an http:// or https:// URL",
                    t.to_possible_value()
                        .map(|v| v.get_name().to_string())
                        .unwrap_or_default()
                )))
            }
            (t, false) => t,
        };
        let mut headers = HeaderMap::new();
        for raw in &cli.headers {
            let (name, value) = parse_header(raw).map_err(usage)?;
            headers.append(name, value);
        }
        if let Some(path) = &cli.bearer_token_file {
            let value = read_bearer_token(path).map_err(usage)?;
            headers.insert(http::header::AUTHORIZATION, value);
        }
        if cli.max_message_bytes == 0 || cli.timeout.is_zero() {
            return Err(usage(
                "--max-message-bytes and --timeout must be more than zero".into(),
            ));
        }
        Ok(ConnectConfig {
            url,
            transport,
            headers,
            bearer_token_file: cli.bearer_token_file.clone(),
            timeout: cli.timeout,
            max_message_bytes: cli.max_message_bytes,
        })
    }
}

/// Parses `Name: value`. Errors: the reason, naming the flag.
fn parse_header(raw: &str) -> Result<(HeaderName, HeaderValue), String> {
    let (name, value) = raw
        .split_once(':')
        .ok_or_else(|| format!("--header {raw:?}: expected \"Name: value\""))?;
    let name = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| {
        format!(
            "--header {raw:?}: {:?} is not a valid header name",
            name.trim()
        )
    })?;
    if RESERVED_HEADERS.contains(&name.as_str()) {
        return Err(format!(
            "--header {raw:?}: {name} is set by the transport itself"
        ));
    }
    let mut value = HeaderValue::from_str(value.trim())
        .map_err(|_| format!("--header {name}: the value has characters a header cannot carry"))?;
    if name == http::header::AUTHORIZATION {
        value.set_sensitive(true);
    }
    Ok((name, value))
}

/// Reads the token file into an `Authorization: Bearer` value. Errors: unreadable, empty, more
/// than one line, or characters a header cannot carry; the message never contains the token.
fn read_bearer_token(path: &std::path::Path) -> Result<HeaderValue, String> {
    bearer_token(path, std::fs::read_to_string(path))
}

/// Like [`read_bearer_token`], without blocking the runtime (the file is read again after a
/// refusal, while the session runs).
pub(crate) async fn reread_bearer_token(path: &std::path::Path) -> Result<HeaderValue, String> {
    bearer_token(path, tokio::fs::read_to_string(path).await)
}

/// The `Authorization` value from the text of the token file at `path` (or why not).
fn bearer_token(
    path: &std::path::Path,
    text: std::io::Result<String>,
) -> Result<HeaderValue, String> {
    let shown = path.display();
    let text = text.map_err(|e| format!("--bearer-token-file {shown}: {e}"))?;
    let token = text.trim();
    if token.is_empty() || token.contains(['\n', '\r']) {
        return Err(format!(
            "--bearer-token-file {shown}: expected one non-empty line holding the token"
        ));
    }
    let mut value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
        format!("--bearer-token-file {shown}: the token has characters a header cannot carry")
    })?;
    value.set_sensitive(true);
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> ConnectCli {
        let mut argv = vec!["connect"];
        argv.extend_from_slice(args);
        ConnectCli::try_parse_from(argv).expect("flags parse")
    }

    fn usage_of(args: &[&str]) -> String {
        match ConnectConfig::from_cli(&cli(args)) {
            Err(ConnectError::Usage(m)) => m,
            other => panic!("expected a usage error, got {other:?}"),
        }
    }

    #[test]
    fn ws_urls_mean_websocket_and_http_urls_keep_auto() {
        let c = ConnectConfig::from_cli(&cli(&["wss://h/ws"])).unwrap();
        assert_eq!(c.transport, RemoteTransport::Ws);
        let c = ConnectConfig::from_cli(&cli(&["http://h/mcp"])).unwrap();
        assert_eq!(c.transport, RemoteTransport::Auto);
        assert!(usage_of(&["--transport", "ws", "http://h/mcp"]).contains("ws://"));
        assert!(usage_of(&["--transport", "sse", "ws://h/"]).contains("--transport sse"));
        assert!(usage_of(&["ftp://h/"]).contains("scheme"));
    }

    #[test]
    fn headers_are_validated_and_transport_headers_refused() {
        let c = ConnectConfig::from_cli(&cli(&["http://h/", "-H", "X-Tenant: a b"])).unwrap();
        assert_eq!(c.headers["x-tenant"], "a b");
        assert!(usage_of(&["http://h/", "-H", "novalue"]).contains("Name: value"));
        assert!(usage_of(&["http://h/", "-H", "Mcp-Session-Id: x"]).contains("transport"));
        assert!(usage_of(&["http://h/", "-H", "bad name: x"]).contains("header name"));
    }

    #[test]
    fn the_bearer_token_file_becomes_a_sensitive_authorization_header() {
        let dir = std::env::temp_dir().join(format!("mcp-bridge-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good");
        std::fs::write(&good, "s3cret-token\n").unwrap();
        let c = ConnectConfig::from_cli(&cli(&[
            "http://h/",
            "--bearer-token-file",
            good.to_str().unwrap(),
        ]))
        .unwrap();
        assert_eq!(c.headers["authorization"], "Bearer s3cret-token");
        assert!(c.headers["authorization"].is_sensitive());
        let two = dir.join("two");
        std::fs::write(&two, "a\nb\n").unwrap();
        let m = usage_of(&["http://h/", "--bearer-token-file", two.to_str().unwrap()]);
        assert!(m.contains("one non-empty line"), "{m}");
        let missing = dir.join("missing");
        assert!(usage_of(&[
            "http://h/",
            "--bearer-token-file",
            missing.to_str().unwrap()
        ])
        .contains("missing"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
