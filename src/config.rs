//! Validated configuration (stage two of two): typed values with cross-field checks, built from
//! [`crate::cli::Cli`]. Nothing else in the crate reads argv or the environment.

use crate::child::ChildSpec;
use crate::cli::{Cli, Forward, Isolation, LogFormat, ResponseMode, TransportFlag};
use crate::router::Root;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

/// Paths the bridge serves itself; the MCP path may not shadow them.
const RESERVED_PATHS: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// Everything the serve job needs, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// Socket address to bind.
    pub listen: SocketAddr,
    /// Path of the Streamable HTTP endpoint, starting with `/`.
    pub mcp_path: String,
    /// Log filter directives.
    pub log_filter: String,
    /// Log format.
    pub log_format: LogFormat,
    /// The child to run.
    pub child: ChildSpec,
    /// Largest POST body, in bytes.
    pub max_body_bytes: usize,
    /// SSE keep-alive comment interval.
    pub sse_keep_alive: Duration,
    /// Drain time after SIGTERM/SIGINT.
    pub shutdown_grace: Duration,
    /// Time for the child's `initialize`.
    pub init_timeout: Duration,
    /// Time a request waits for its response.
    pub request_timeout: Duration,
    /// Maximum open sessions.
    pub max_sessions: usize,
    /// GET-stream outbox capacity, in messages.
    pub session_outbox: usize,
    /// How POST requests are answered.
    pub response_mode: ResponseMode,
    /// Roots the bridge announces to the shared child.
    pub roots: Vec<Root>,
    /// Forward sampling requests (shared mode).
    pub forward_sampling: bool,
    /// Forward elicitation requests (shared mode).
    pub forward_elicitation: bool,
    /// Time a server-to-client request waits for the client.
    pub client_request_timeout: Duration,
    /// Shared child or one child per session.
    pub isolation: Isolation,
    /// Maximum children in per-session mode.
    pub max_children: usize,
    /// Idle time after which a session ends.
    pub session_idle_timeout: Duration,
    /// `(header name, child environment variable)` pairs for per-session children.
    pub session_env: Vec<(http::HeaderName, String)>,
    /// Serve without sessions.
    pub stateless: bool,
    /// Streamable HTTP enabled.
    pub streamable_http: bool,
    /// Legacy HTTP+SSE enabled.
    pub sse: bool,
    /// WebSocket enabled.
    pub ws: bool,
    /// Legacy SSE stream path.
    pub sse_path: String,
    /// Legacy SSE message path.
    pub message_path: String,
    /// WebSocket path.
    pub ws_path: String,
    /// Proxy path prefix for the SSE `endpoint` event ("" or "/something" without a trailing slash).
    pub base_path: String,
    /// Use `X-Forwarded-Prefix` as the path prefix.
    pub trust_forwarded_prefix: bool,
    /// Restart policy of the shared child.
    pub restart: crate::supervisor::RestartSettings,
    /// `--allowed-hosts` (empty: the default, see [`crate::guard`]).
    pub allowed_hosts: Vec<String>,
    /// `--allowed-origins`.
    pub allowed_origins: Vec<String>,
    /// `--tls-cert` and `--tls-key` (both or neither).
    pub tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// `--cors-origin` (empty: CORS off).
    pub cors_origins: Vec<String>,
    /// `--auth-token-file`.
    pub auth_token_file: Option<std::path::PathBuf>,
    /// OAuth resource-server mode (`--oauth-issuer` and friends).
    pub oauth: Option<crate::oauth::OAuthSettings>,
    /// `MCP_BRIDGE_AUTH_TOKEN` (environment only, so it never shows in the process list).
    pub auth_token: Option<crate::auth::Secret>,
    /// `MCP_BRIDGE_SESSION_SECRET` (environment only): seals session ids and keys principals so
    /// that replicas sharing it can adopt each other's new sessions ([`crate::session::seal`]).
    pub session_secret: Option<crate::auth::Secret>,
    /// `--protect-metrics`.
    pub protect_metrics: bool,
    /// `--admin-listen`: where /metrics, /healthz and /readyz are served apart from the MCP
    /// endpoints (then /metrics is not on the main listener).
    pub admin_listen: Option<std::net::SocketAddr>,
    /// Threads of the async runtime (at least 1).
    pub worker_threads: usize,
    /// Requests one session may have in flight.
    pub max_in_flight: usize,
    /// Time a request waits for a (re)starting child.
    pub queue_timeout: Duration,
    /// Time for a request head.
    pub header_read_timeout: Duration,
    /// Largest request head, in bytes (at least 8192, hyper's minimum buffer).
    pub max_header_bytes: usize,
    /// Events kept per resumable stream.
    pub replay_buffer: usize,
}

/// A configuration error, printed as one line; `main` exits 64.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError(msg.into()))
}

impl Config {
    /// Validates `cli` into a [`Config`]. Errors name the offending flag and what is expected.
    pub fn from_cli(cli: Cli) -> Result<Config, ConfigError> {
        let Some((program, args)) = cli.command.split_first() else {
            return err("missing child command: usage: mcp-bridge [OPTIONS] -- CMD [ARGS]...");
        };
        let listen = resolve(&cli.host, cli.port)?;
        if !cli.mcp_path.starts_with('/') || RESERVED_PATHS.contains(&cli.mcp_path.as_str()) {
            return err(format!(
                "--mcp-path {:?} must start with '/' and not be one of {RESERVED_PATHS:?}",
                cli.mcp_path
            ));
        }
        let env = cli
            .env
            .iter()
            .map(|kv| parse_env(kv))
            .collect::<Result<Vec<_>, _>>()?;
        positive("--max-line-bytes", cli.max_line_bytes)?;
        positive("--max-body-bytes", cli.max_body_bytes)?;
        positive("--max-sessions", cli.max_sessions)?;
        positive("--session-outbox", cli.session_outbox)?;
        positive("--child-queue", cli.child_queue)?;
        positive("--max-children", cli.max_children)?;
        positive("--max-in-flight", cli.max_in_flight)?;
        if cli.worker_threads == Some(0) {
            return err("--worker-threads must be at least 1");
        }
        if cli.stateless && cli.isolation == Isolation::Session {
            return err("--stateless and --isolation session exclude each other (per-session children need sessions)");
        }
        if !cli.session_env.is_empty() && cli.isolation != Isolation::Session {
            return err("--session-env needs --isolation session");
        }
        let paths = [
            &cli.mcp_path,
            &cli.sse_path,
            &cli.message_path,
            &cli.ws_path,
        ];
        for p in &paths[1..] {
            if !p.starts_with('/') || RESERVED_PATHS.contains(&p.as_str()) {
                return err(format!(
                    "path {p:?} must start with '/' and not be one of {RESERVED_PATHS:?}"
                ));
            }
        }
        if (1..paths.len()).any(|i| paths[..i].contains(&paths[i])) {
            return err("--mcp-path, --sse-path, --message-path and --ws-path must differ");
        }
        if cli.transports.is_empty() {
            return err("--transports needs at least one of streamable-http, sse, ws");
        }
        if !cli.base_path.is_empty() && !cli.base_path.starts_with('/') {
            return err(format!(
                "--base-path {:?} must start with '/'",
                cli.base_path
            ));
        }
        let roots = cli
            .roots
            .iter()
            .map(|p| root(p))
            .collect::<Result<Vec<_>, _>>()?;
        let session_env = cli
            .session_env
            .iter()
            .map(|kv| parse_session_env(kv))
            .collect::<Result<Vec<_>, _>>()?;
        let oauth = match cli.oauth_issuer {
            None => None,
            Some(issuer) => Some(
                crate::oauth::OAuthSettings::new(
                    issuer,
                    cli.oauth_jwks,
                    cli.oauth_audiences,
                    cli.oauth_scopes,
                    cli.public_url.unwrap_or_default(),
                )
                .map_err(ConfigError)?,
            ),
        };
        let session_secret = session_secret()?;
        let auth_on = cli.auth_token_file.is_some()
            || oauth.is_some()
            || std::env::var_os(crate::auth::TOKEN_ENV).is_some_and(|v| !v.is_empty());
        if auth_on
            && session_env
                .iter()
                .any(|(h, _)| h == http::header::AUTHORIZATION)
        {
            return err("--session-env authorization=... would hand the clients' bearer tokens to the child; tokens are for the bridge only (PROTOCOL.md section 5, no token passthrough)");
        }
        for (flag, d) in [
            ("--client-request-timeout", cli.client_request_timeout),
            ("--session-idle-timeout", cli.session_idle_timeout),
            ("--sse-keep-alive", cli.sse_keep_alive),
            ("--init-timeout", cli.init_timeout),
            ("--request-timeout", cli.request_timeout),
        ] {
            if d.is_zero() {
                return err(format!("{flag} must be greater than zero"));
            }
        }
        Ok(Config {
            listen,
            mcp_path: cli.mcp_path,
            log_filter: cli.log_level,
            log_format: cli.log_format,
            child: ChildSpec {
                program: program.clone(),
                args: args.to_vec(),
                env,
                clear_env: cli.clear_env,
                max_line_bytes: cli.max_line_bytes,
                stdin_queue: cli.child_queue,
            },
            max_body_bytes: cli.max_body_bytes,
            sse_keep_alive: cli.sse_keep_alive,
            shutdown_grace: cli.shutdown_grace,
            init_timeout: cli.init_timeout,
            request_timeout: cli.request_timeout,
            max_sessions: cli.max_sessions,
            session_outbox: cli.session_outbox,
            response_mode: cli.response_mode,
            roots,
            forward_sampling: cli.forward.contains(&Forward::Sampling),
            forward_elicitation: cli.forward.contains(&Forward::Elicitation),
            client_request_timeout: cli.client_request_timeout,
            isolation: cli.isolation,
            max_children: cli.max_children,
            session_idle_timeout: cli.session_idle_timeout,
            session_env,
            stateless: cli.stateless,
            streamable_http: cli.transports.contains(&TransportFlag::StreamableHttp),
            sse: cli.transports.contains(&TransportFlag::Sse),
            ws: cli.transports.contains(&TransportFlag::Ws),
            sse_path: cli.sse_path,
            message_path: cli.message_path,
            ws_path: cli.ws_path,
            base_path: cli.base_path.trim_end_matches('/').to_string(),
            trust_forwarded_prefix: cli.trust_forwarded_prefix,
            worker_threads: cli.worker_threads.unwrap_or_else(default_worker_threads),
            allowed_hosts: cli.allowed_hosts,
            tls: cli.tls_cert.zip(cli.tls_key),
            cors_origins: cli.cors_origins,
            auth_token_file: cli.auth_token_file,
            oauth,
            auth_token: std::env::var(crate::auth::TOKEN_ENV)
                .ok()
                .map(crate::auth::Secret),
            session_secret,
            protect_metrics: cli.protect_metrics,
            admin_listen: cli.admin_listen,
            allowed_origins: cli.allowed_origins,
            max_in_flight: cli.max_in_flight,
            replay_buffer: cli.replay_buffer,
            queue_timeout: cli.queue_timeout,
            header_read_timeout: cli.header_read_timeout,
            max_header_bytes: cli.max_header_bytes.max(8192),
            restart: crate::supervisor::RestartSettings {
                policy: cli.restart,
                max_restarts: cli.max_restarts,
                window: cli.restart_window,
            },
        })
    }
}

/// `MCP_BRIDGE_SESSION_SECRET`, if set: at least 32 bytes (empty counts as unset).
fn session_secret() -> Result<Option<crate::auth::Secret>, ConfigError> {
    use crate::session::seal::{MIN_SECRET_BYTES, SECRET_ENV};
    match std::env::var(SECRET_ENV) {
        Ok(v) if v.is_empty() => Ok(None),
        Ok(v) if v.len() < MIN_SECRET_BYTES => err(format!(
            "{SECRET_ENV} is {} bytes; it must be at least {MIN_SECRET_BYTES} (e.g. `openssl rand -hex 32`), the same on every replica",
            v.len()
        )),
        Ok(v) => Ok(Some(crate::auth::Secret(v))),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => {
            err(format!("{SECRET_ENV} is not valid UTF-8"))
        }
    }
}

fn resolve(host: &str, port: u16) -> Result<SocketAddr, ConfigError> {
    match (host, port).to_socket_addrs() {
        Ok(mut addrs) => addrs.next().map_or_else(
            || err(format!("--host {host:?} resolves to no address")),
            Ok,
        ),
        Err(e) => err(format!("--host {host:?} is not a valid address: {e}")),
    }
}

fn parse_env(kv: &str) -> Result<(String, String), ConfigError> {
    match kv.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        // The value is deliberately not echoed: it may be a secret.
        _ => err("--env expects K=V with a non-empty name"),
    }
}

/// A `--roots` directory as a `file://` root named after its last component.
fn root(path: &std::path::Path) -> Result<Root, ConfigError> {
    let abs = std::fs::canonicalize(path)
        .map_err(|e| ConfigError(format!("--roots {}: {e}", path.display())))?;
    if !abs.is_dir() {
        return err(format!("--roots {}: not a directory", path.display()));
    }
    let name = abs
        .file_name()
        .map_or_else(|| "/".to_string(), |n| n.to_string_lossy().into_owned());
    Ok(Root {
        uri: format!("file://{}", abs.display()),
        name,
    })
}

fn parse_session_env(kv: &str) -> Result<(http::HeaderName, String), ConfigError> {
    let bad = || ConfigError(format!("--session-env expects HEADER=ENVVAR, got {kv:?}"));
    let (header, var) = kv.split_once('=').ok_or_else(bad)?;
    let header = http::HeaderName::from_bytes(header.trim().as_bytes()).map_err(|_| bad())?;
    if var.is_empty() || var.contains('=') {
        return Err(bad());
    }
    Ok((header, var.to_string()))
}

fn positive(flag: &str, n: usize) -> Result<(), ConfigError> {
    if n == 0 {
        return err(format!("{flag} must be greater than zero"));
    }
    Ok(())
}

/// The default `--worker-threads`: half the CPUs available to the process (cgroup CPU quotas
/// included, see [`std::thread::available_parallelism`]), at least 1. The bridge only moves
/// bytes; the child needs CPU too, and on a 2-CPU host one runtime thread serves more requests
/// with less CPU each than two (measured with `cargo bench --bench load`, README "Benchmarks").
pub fn default_worker_threads() -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cpus / 2).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(args: &[&str]) -> Result<Config, ConfigError> {
        Config::from_cli(Cli::try_parse_from(args).expect("flags parse"))
    }

    #[test]
    fn defaults_and_child_command() {
        let c = parse(&["mcp-bridge", "--", "npx", "-y", "pkg"]).unwrap();
        assert_eq!(c.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(c.mcp_path, "/mcp");
        assert_eq!(c.child.program, "npx");
        assert_eq!(c.child.args, vec!["-y", "pkg"]);
        assert_eq!(c.child.max_line_bytes, 16 * 1024 * 1024);
        assert_eq!(c.shutdown_grace, Duration::from_secs(10));
        assert_eq!(c.sse_keep_alive, Duration::from_secs(15));
    }

    #[test]
    fn rejects_missing_command_bad_env_and_bad_path() {
        assert!(parse(&["mcp-bridge"])
            .unwrap_err()
            .0
            .contains("missing child command"));
        let e = parse(&["mcp-bridge", "--env", "SECRET", "--", "x"]).unwrap_err();
        assert!(e.0.contains("K=V"));
        assert!(parse(&["mcp-bridge", "--mcp-path", "mcp", "--", "x"]).is_err());
        assert!(parse(&["mcp-bridge", "--mcp-path", "/healthz", "--", "x"]).is_err());
        assert!(parse(&["mcp-bridge", "--max-body-bytes", "0", "--", "x"]).is_err());
    }

    #[test]
    fn issue3_flags_validate() {
        let c = parse(&[
            "mcp-bridge",
            "--forward",
            "sampling,elicitation",
            "--roots",
            "/tmp",
            "--",
            "x",
        ])
        .unwrap();
        assert!(c.forward_sampling && c.forward_elicitation);
        assert_eq!(
            c.roots[0].uri,
            format!(
                "file://{}",
                std::fs::canonicalize("/tmp").unwrap().display()
            )
        );
        assert!(parse(&["mcp-bridge", "--roots", "/nonexistent-dir", "--", "x"]).is_err());
        assert!(parse(&[
            "mcp-bridge",
            "--stateless",
            "--isolation",
            "session",
            "--",
            "x"
        ])
        .is_err());
        assert!(parse(&["mcp-bridge", "--session-env", "x-token=TOKEN", "--", "x"]).is_err());
        let c = parse(&[
            "mcp-bridge",
            "--isolation",
            "session",
            "--session-env",
            "X-Token=TOKEN",
            "--",
            "x",
        ])
        .unwrap();
        assert_eq!(c.session_env[0].0, "x-token");
        assert_eq!(c.session_env[0].1, "TOKEN");
    }

    #[test]
    fn transport_flags_and_paths() {
        let c = parse(&[
            "mcp-bridge",
            "--transports",
            "sse,ws",
            "--base-path",
            "/p/",
            "--",
            "x",
        ])
        .unwrap();
        assert!(!c.streamable_http && c.sse && c.ws);
        assert_eq!(c.base_path, "/p");
        let c = parse(&["mcp-bridge", "--", "x"]).unwrap();
        assert!(c.streamable_http && c.sse && c.ws);
        assert_eq!(
            (
                c.sse_path.as_str(),
                c.message_path.as_str(),
                c.ws_path.as_str()
            ),
            ("/sse", "/message", "/ws")
        );
        assert!(parse(&["mcp-bridge", "--ws-path", "/mcp", "--", "x"]).is_err());
        assert!(parse(&["mcp-bridge", "--sse-path", "sse", "--", "x"]).is_err());
        assert!(parse(&["mcp-bridge", "--base-path", "p", "--", "x"]).is_err());
    }

    #[test]
    fn env_pairs_keep_equals_signs_in_values() {
        let c = parse(&["mcp-bridge", "--env", "A=b=c", "--port", "0", "--", "x"]).unwrap();
        assert_eq!(c.child.env, vec![("A".to_string(), "b=c".to_string())]);
        assert_eq!(c.listen.port(), 0);
    }
}
