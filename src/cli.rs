//! Raw command-line flags (stage one of two; [`crate::config`] validates them).
//!
//! Every option can also be set through an `MCP_BRIDGE_*` environment variable, except `--env`
//! (the child inherits the bridge's own environment, so set the variable directly instead).

use clap::{Parser, ValueEnum};
use std::time::Duration;

/// Default listen host: loopback only (PROTOCOL.md section 2.2: bind localhost when local).
pub const DEFAULT_HOST: &str = "127.0.0.1";
/// Default listen port.
pub const DEFAULT_PORT: u16 = 8080;
/// Default path of the Streamable HTTP MCP endpoint.
pub const DEFAULT_MCP_PATH: &str = "/mcp";
/// Default longest line accepted from the child's stdout: 16 MiB.
pub const DEFAULT_MAX_LINE_BYTES: usize = 16 * 1024 * 1024;
/// Default largest POST body accepted: 16 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
/// Default interval of SSE keep-alive comments.
pub const DEFAULT_SSE_KEEP_ALIVE: &str = "15s";
/// Default time in-flight requests get to finish after SIGTERM/SIGINT.
pub const DEFAULT_SHUTDOWN_GRACE: &str = "10s";
/// Default time the child gets to answer the bridge's own `initialize`.
pub const DEFAULT_INIT_TIMEOUT: &str = "60s";
/// Default time a request waits for the child's response.
pub const DEFAULT_REQUEST_TIMEOUT: &str = "300s";
/// Default maximum number of open sessions.
pub const DEFAULT_MAX_SESSIONS: usize = 10_000;
/// Default capacity of a session's GET-stream outbox, in messages.
pub const DEFAULT_SESSION_OUTBOX: usize = 256;
/// Default capacity of the queue of lines to the child's stdin, in messages.
pub const DEFAULT_CHILD_QUEUE: usize = 4096;

/// Default time a server-to-client request waits for the client's answer.
pub const DEFAULT_CLIENT_REQUEST_TIMEOUT: &str = "60s";
/// Default maximum number of children in per-session mode.
pub const DEFAULT_MAX_CHILDREN: usize = 64;
/// Default time after which a session with no request and no open stream is ended.
pub const DEFAULT_SESSION_IDLE_TIMEOUT: &str = "30m";

/// Default maximum requests one session may have in flight.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 64;
/// Default time a request waits for a (re)starting child before it fails.
pub const DEFAULT_QUEUE_TIMEOUT: &str = "5s";
/// Default time a client gets to send a request's head.
pub const DEFAULT_HEADER_READ_TIMEOUT: &str = "30s";
/// Default largest request head (request line and headers), in bytes.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 64 * 1024;

/// Default number of events kept per resumable SSE stream.
pub const DEFAULT_REPLAY_BUFFER: usize = 1000;

/// Default number of restarts allowed within the restart window.
pub const DEFAULT_MAX_RESTARTS: usize = 5;
/// Default restart window.
pub const DEFAULT_RESTART_WINDOW: &str = "60s";

/// When the shared child is restarted after it exits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RestartPolicy {
    /// After any exit.
    Always,
    /// After an exit with a non-zero status or a signal.
    OnFailure,
    /// Never: the bridge stays up, not ready.
    Never,
}

/// How POST requests are answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ResponseMode {
    /// For requests that may produce related messages, when the client accepts SSE: JSON if
    /// the response comes within 50 ms with nothing before it, otherwise an SSE stream that starts
    /// at the first related message or after 50 ms. JSON for everything else.
    Auto,
    /// Always `application/json`.
    Json,
    /// SSE whenever the client accepts it (a response within 50 ms goes out with its stream in
    /// one write).
    Sse,
}

/// How sessions map to children.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Isolation {
    /// One child for all sessions.
    Shared,
    /// One child per session.
    Session,
}

/// Default path of the legacy HTTP+SSE stream.
pub const DEFAULT_SSE_PATH: &str = "/sse";
/// Default path legacy HTTP+SSE clients POST their messages to.
pub const DEFAULT_MESSAGE_PATH: &str = "/message";
/// Default path of the WebSocket endpoint.
pub const DEFAULT_WS_PATH: &str = "/ws";

/// A client-facing transport that can be switched on or off.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TransportFlag {
    /// Streamable HTTP on `--mcp-path`.
    StreamableHttp,
    /// Legacy HTTP+SSE on `--sse-path` and `--message-path`.
    Sse,
    /// WebSocket on `--ws-path`.
    Ws,
}

/// Server-to-client request kinds the shared child may send to clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Forward {
    /// `sampling/createMessage`.
    Sampling,
    /// `elicitation/create`.
    Elicitation,
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `mcp-bridge [OPTIONS] -- CMD [ARGS]...`: serve a stdio MCP server over Streamable HTTP.
#[derive(Parser, Debug)]
#[command(
    name = "mcp-bridge",
    version,
    about,
    override_usage = "mcp-bridge [OPTIONS] -- CMD [ARGS]...\n       mcp-bridge connect URL [OPTIONS]\n       mcp-bridge probe [--url URL] [--timeout DURATION] [--insecure]\n       mcp-bridge deploy k8s|fly|compose [OPTIONS]",
    after_help = "Subcommands: `mcp-bridge connect --help` is a local stdio server forwarding to a remote MCP server; `mcp-bridge probe --help` checks a running bridge's /healthz (for container HEALTHCHECKs); `mcp-bridge deploy --help` renders deploy artifacts."
)]
pub struct Cli {
    /// Address to listen on (IP or host name).
    #[arg(long, env = "MCP_BRIDGE_HOST", default_value = DEFAULT_HOST)]
    pub host: String,
    /// TCP port to listen on (0 picks a free port).
    #[arg(long, short = 'p', env = "MCP_BRIDGE_PORT", default_value_t = DEFAULT_PORT)]
    pub port: u16,
    /// Path of the Streamable HTTP MCP endpoint.
    #[arg(long, env = "MCP_BRIDGE_MCP_PATH", default_value = DEFAULT_MCP_PATH)]
    pub mcp_path: String,
    /// Log filter: a level (error, warn, info, debug, trace) or tracing directives.
    #[arg(long, env = "MCP_BRIDGE_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// Log format.
    #[arg(long, env = "MCP_BRIDGE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Extra environment variable for the child, K=V (repeatable).
    #[arg(long = "env", value_name = "K=V")]
    pub env: Vec<String>,
    /// Start the child with an empty environment (plus --env) instead of inheriting the bridge's.
    #[arg(long, env = "MCP_BRIDGE_CLEAR_ENV")]
    pub clear_env: bool,
    /// Longest line accepted from the child's stdout, in bytes; longer lines are skipped.
    #[arg(long, env = "MCP_BRIDGE_MAX_LINE_BYTES", default_value_t = DEFAULT_MAX_LINE_BYTES)]
    pub max_line_bytes: usize,
    /// Largest POST body accepted, in bytes (413 above it).
    #[arg(long, env = "MCP_BRIDGE_MAX_BODY_BYTES", default_value_t = DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,
    /// Interval of SSE keep-alive comments (e.g. 15s).
    #[arg(long, env = "MCP_BRIDGE_SSE_KEEP_ALIVE", default_value = DEFAULT_SSE_KEEP_ALIVE, value_parser = humantime::parse_duration)]
    pub sse_keep_alive: Duration,
    /// Time in-flight requests get to finish after SIGTERM/SIGINT before the child is stopped.
    #[arg(long, env = "MCP_BRIDGE_SHUTDOWN_GRACE", default_value = DEFAULT_SHUTDOWN_GRACE, value_parser = humantime::parse_duration)]
    pub shutdown_grace: Duration,
    /// Time the child gets to answer the bridge's initialize.
    #[arg(long, env = "MCP_BRIDGE_INIT_TIMEOUT", default_value = DEFAULT_INIT_TIMEOUT, value_parser = humantime::parse_duration)]
    pub init_timeout: Duration,
    /// Time a request waits for the child's response before it fails (-32001).
    #[arg(long, env = "MCP_BRIDGE_REQUEST_TIMEOUT", default_value = DEFAULT_REQUEST_TIMEOUT, value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,
    /// Maximum number of open sessions (503 on initialize above it).
    #[arg(long, env = "MCP_BRIDGE_MAX_SESSIONS", default_value_t = DEFAULT_MAX_SESSIONS)]
    pub max_sessions: usize,
    /// Messages a session's GET stream may have queued before it is closed as a slow consumer.
    #[arg(long, env = "MCP_BRIDGE_SESSION_OUTBOX", default_value_t = DEFAULT_SESSION_OUTBOX)]
    pub session_outbox: usize,
    /// Messages that may wait for the child's stdin before requests are refused (-32002).
    #[arg(long, env = "MCP_BRIDGE_CHILD_QUEUE", default_value_t = DEFAULT_CHILD_QUEUE)]
    pub child_queue: usize,
    /// How POST requests are answered: auto, json or sse.
    #[arg(long, env = "MCP_BRIDGE_RESPONSE_MODE", value_enum, default_value_t = ResponseMode::Auto)]
    pub response_mode: ResponseMode,
    /// Directory announced to the shared child as a root; the bridge answers roots/list itself (repeatable, or comma-separated).
    #[arg(
        long = "roots",
        env = "MCP_BRIDGE_ROOTS",
        value_name = "PATH",
        value_delimiter = ','
    )]
    pub roots: Vec<std::path::PathBuf>,
    /// Server-to-client requests the shared child may send to the session they belong to (comma-separated).
    #[arg(long, env = "MCP_BRIDGE_FORWARD", value_enum, value_delimiter = ',')]
    pub forward: Vec<Forward>,
    /// Time a server-to-client request waits for the client before the child gets an error.
    #[arg(long, env = "MCP_BRIDGE_CLIENT_REQUEST_TIMEOUT", default_value = DEFAULT_CLIENT_REQUEST_TIMEOUT, value_parser = humantime::parse_duration)]
    pub client_request_timeout: Duration,
    /// shared: one child for all sessions; session: one child per session, started on its initialize.
    #[arg(long, env = "MCP_BRIDGE_ISOLATION", value_enum, default_value_t = Isolation::Shared)]
    pub isolation: Isolation,
    /// Maximum number of children in per-session mode (503 on initialize above it).
    #[arg(long, env = "MCP_BRIDGE_MAX_CHILDREN", default_value_t = DEFAULT_MAX_CHILDREN)]
    pub max_children: usize,
    /// A session with no request and no open stream for this long is ended (its child stopped).
    #[arg(long, env = "MCP_BRIDGE_SESSION_IDLE_TIMEOUT", default_value = DEFAULT_SESSION_IDLE_TIMEOUT, value_parser = humantime::parse_duration)]
    pub session_idle_timeout: Duration,
    /// Per-session mode: pass request header HEADER of the initialize POST to the session's child as ENVVAR (repeatable).
    #[arg(long = "session-env", value_name = "HEADER=ENVVAR")]
    pub session_env: Vec<String>,
    /// Serve without sessions: no Mcp-Session-Id, every request served by the shared child.
    #[arg(long, env = "MCP_BRIDGE_STATELESS")]
    pub stateless: bool,
    /// Threads of the async runtime [default: half the CPUs available to the process, at least 1; the child needs the rest].
    #[arg(long, env = "MCP_BRIDGE_WORKER_THREADS", value_name = "N")]
    pub worker_threads: Option<usize>,
    /// Requests one session may have in flight; more get 429 (JSON-RPC error -32002 on connections).
    #[arg(long, env = "MCP_BRIDGE_MAX_IN_FLIGHT", default_value_t = DEFAULT_MAX_IN_FLIGHT)]
    pub max_in_flight: usize,
    /// Time a request waits for a starting or restarting child before it fails (-32000).
    #[arg(long, env = "MCP_BRIDGE_QUEUE_TIMEOUT", default_value = DEFAULT_QUEUE_TIMEOUT, value_parser = humantime::parse_duration)]
    pub queue_timeout: Duration,
    /// Time a client gets to send a request's head before the connection is closed (slowloris).
    #[arg(long, env = "MCP_BRIDGE_HEADER_READ_TIMEOUT", default_value = DEFAULT_HEADER_READ_TIMEOUT, value_parser = humantime::parse_duration)]
    pub header_read_timeout: Duration,
    /// Largest request head (request line plus headers) in bytes; larger gets 431.
    #[arg(long, env = "MCP_BRIDGE_MAX_HEADER_BYTES", default_value_t = DEFAULT_MAX_HEADER_BYTES)]
    pub max_header_bytes: usize,
    /// Events kept per Streamable HTTP SSE stream for replay after a reconnect with Last-Event-ID.
    #[arg(long, env = "MCP_BRIDGE_REPLAY_BUFFER", default_value_t = DEFAULT_REPLAY_BUFFER)]
    pub replay_buffer: usize,
    /// When to restart the shared child after it exits: always, on-failure, never.
    #[arg(long, env = "MCP_BRIDGE_RESTART", value_enum, default_value_t = RestartPolicy::Always)]
    pub restart: RestartPolicy,
    /// Restarts allowed within --restart-window; one more and the bridge gives up and exits 1.
    #[arg(long, env = "MCP_BRIDGE_MAX_RESTARTS", default_value_t = DEFAULT_MAX_RESTARTS)]
    pub max_restarts: usize,
    /// Sliding window for --max-restarts.
    #[arg(long, env = "MCP_BRIDGE_RESTART_WINDOW", default_value = DEFAULT_RESTART_WINDOW, value_parser = humantime::parse_duration)]
    pub restart_window: Duration,
    /// Transports to serve (comma-separated): streamable-http, sse, ws.
    #[arg(
        long,
        env = "MCP_BRIDGE_TRANSPORTS",
        value_enum,
        value_delimiter = ',',
        default_value = "streamable-http,sse,ws"
    )]
    pub transports: Vec<TransportFlag>,
    /// Path of the legacy HTTP+SSE stream.
    #[arg(long, env = "MCP_BRIDGE_SSE_PATH", default_value = DEFAULT_SSE_PATH)]
    pub sse_path: String,
    /// Path legacy HTTP+SSE clients POST messages to (announced in the `endpoint` event).
    #[arg(long, env = "MCP_BRIDGE_MESSAGE_PATH", default_value = DEFAULT_MESSAGE_PATH)]
    pub message_path: String,
    /// Path of the WebSocket endpoint.
    #[arg(long, env = "MCP_BRIDGE_WS_PATH", default_value = DEFAULT_WS_PATH)]
    pub ws_path: String,
    /// Path prefix a reverse proxy adds in front of the bridge (e.g. /mcp-tools); used in the SSE `endpoint` event.
    #[arg(long, env = "MCP_BRIDGE_BASE_PATH", default_value = "")]
    pub base_path: String,
    /// Take the path prefix from the X-Forwarded-Prefix request header (only behind a proxy that sets it).
    #[arg(long, env = "MCP_BRIDGE_TRUST_FORWARDED_PREFIX")]
    pub trust_forwarded_prefix: bool,
    /// Host names (any port), host:port authorities or * accepted in the Host header of MCP requests; replaces the default (loopback names on a loopback bind, anything otherwise); others get 421 (repeatable, or comma-separated).
    #[arg(
        long = "allowed-hosts",
        env = "MCP_BRIDGE_ALLOWED_HOSTS",
        value_name = "HOST",
        value_delimiter = ','
    )]
    pub allowed_hosts: Vec<String>,
    /// Origins (scheme://host or scheme://host:port) or * accepted besides the same origin (and loopback origins on a loopback bind); others get 403 (repeatable, or comma-separated).
    #[arg(
        long = "allowed-origins",
        env = "MCP_BRIDGE_ALLOWED_ORIGINS",
        value_name = "ORIGIN",
        value_delimiter = ','
    )]
    pub allowed_origins: Vec<String>,
    /// File of bearer tokens, one per line (# comments allowed), re-read on SIGHUP; MCP endpoints then require Authorization: Bearer TOKEN. A single token can also come from MCP_BRIDGE_AUTH_TOKEN.
    #[arg(
        long = "auth-token-file",
        env = "MCP_BRIDGE_AUTH_TOKEN_FILE",
        value_name = "PATH"
    )]
    pub auth_token_file: Option<std::path::PathBuf>,
    /// OAuth 2.1 resource-server mode: the authorization server whose JWT access tokens are accepted (exact `iss` value); needs --public-url. Its keys come from --oauth-jwks, or else from the jwks_uri of its RFC 8414 / OpenID Connect metadata.
    #[arg(
        long = "oauth-issuer",
        env = "MCP_BRIDGE_OAUTH_ISSUER",
        value_name = "URL",
        requires = "public_url"
    )]
    pub oauth_issuer: Option<String>,
    /// Where the issuer's signing keys are: an https URL of a JWK Set (http only on loopback; refetched for an unknown kid, at most every 10 s, and every 15 min) or a local file (re-read on SIGHUP). Default: discovered from the issuer's metadata.
    #[arg(
        long = "oauth-jwks",
        env = "MCP_BRIDGE_OAUTH_JWKS",
        value_name = "URL|PATH",
        requires = "oauth_issuer"
    )]
    pub oauth_jwks: Option<String>,
    /// Audience (`aud`) a token must name; defaults to --public-url, the resource clients request tokens for (RFC 8707). Repeatable, or comma-separated.
    #[arg(
        long = "oauth-audience",
        env = "MCP_BRIDGE_OAUTH_AUDIENCE",
        value_name = "URI",
        value_delimiter = ',',
        requires = "oauth_issuer"
    )]
    pub oauth_audiences: Vec<String>,
    /// Scope every token must grant (in `scope` or `scp`); a token without it gets 403 insufficient_scope. Repeatable, or comma-separated.
    #[arg(
        long = "oauth-scope",
        env = "MCP_BRIDGE_OAUTH_SCOPE",
        value_name = "SCOPE",
        value_delimiter = ',',
        requires = "oauth_issuer"
    )]
    pub oauth_scopes: Vec<String>,
    /// The MCP endpoint's URL as clients reach it (e.g. https://mcp.example.com/mcp): the `resource` of /.well-known/oauth-protected-resource and of resource_metadata links.
    // The example URL is for `--help`, where rustdoc's <...> link syntax would show.
    #[allow(rustdoc::bare_urls)]
    #[arg(long = "public-url", env = "MCP_BRIDGE_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,
    /// Serve /metrics (only there) plus /healthz and /readyz on this separate address, e.g. 127.0.0.1:9090, for a monitoring network.
    #[arg(
        long = "admin-listen",
        env = "MCP_BRIDGE_ADMIN_LISTEN",
        value_name = "ADDR"
    )]
    pub admin_listen: Option<std::net::SocketAddr>,
    /// Require a bearer token on /metrics too (/healthz and /readyz stay open).
    #[arg(long, env = "MCP_BRIDGE_PROTECT_METRICS")]
    pub protect_metrics: bool,
    /// Origins (scheme://host or scheme://host:port) or * allowed to call the MCP endpoints from a browser (CORS; off by default): they get Access-Control-Allow-Origin, exposed Mcp-Session-Id and WWW-Authenticate, and preflight answers (repeatable, or comma-separated).
    #[arg(
        long = "cors-origin",
        env = "MCP_BRIDGE_CORS_ORIGIN",
        value_name = "ORIGIN",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<String>,
    /// PEM certificate chain (leaf first) to serve HTTPS with; needs --tls-key; re-read on SIGHUP.
    #[arg(
        long = "tls-cert",
        env = "MCP_BRIDGE_TLS_CERT",
        value_name = "PATH",
        requires = "tls_key"
    )]
    pub tls_cert: Option<std::path::PathBuf>,
    /// PEM private key of --tls-cert; re-read on SIGHUP.
    #[arg(
        long = "tls-key",
        env = "MCP_BRIDGE_TLS_KEY",
        value_name = "PATH",
        requires = "tls_cert"
    )]
    pub tls_key: Option<std::path::PathBuf>,
    /// The stdio MCP server to run, after `--`.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}
