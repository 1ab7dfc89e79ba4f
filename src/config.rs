//! Validated configuration (stage two of two): typed values with cross-field checks, built from
//! [`crate::cli::Cli`]. Nothing else in the crate reads argv or the environment.

use crate::child::ChildSpec;
use crate::cli::{Cli, LogFormat};
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
        for (flag, d) in [
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
        })
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

fn positive(flag: &str, n: usize) -> Result<(), ConfigError> {
    if n == 0 {
        return err(format!("{flag} must be greater than zero"));
    }
    Ok(())
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
    fn env_pairs_keep_equals_signs_in_values() {
        let c = parse(&["mcp-bridge", "--env", "A=b=c", "--port", "0", "--", "x"]).unwrap();
        assert_eq!(c.child.env, vec![("A".to_string(), "b=c".to_string())]);
        assert_eq!(c.listen.port(), 0);
    }
}
