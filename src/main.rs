//! `mcp-bridge` binary: parse, validate, set up logging, run; exit 64 on usage or configuration
//! errors, 1 on runtime failure. `mcp-bridge probe ...` checks a running bridge instead
//! ([`mcp_bridge::probe`]); `mcp-bridge deploy ...` renders deploy artifacts
//! ([`mcp_bridge::deploy`]); `mcp-bridge connect URL` is a stdio server forwarding to a
//! remote one ([`mcp_bridge::connect`]).

use clap::Parser;
use mcp_bridge::cli::Cli;
use mcp_bridge::config::Config;
use std::process::ExitCode;

/// Exit code for usage and configuration errors (sysexits EX_USAGE).
const EXIT_USAGE: u8 = 64;

fn main() -> ExitCode {
    match std::env::args_os().nth(1) {
        Some(a) if a == "probe" => return probe(),
        Some(a) if a == "deploy" => return deploy(),
        Some(a) if a == "connect" => return connect(),
        _ => {}
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => return usage_error(&first_line(&e.to_string())),
    };
    let config = match Config::from_cli(cli) {
        Ok(config) => config,
        Err(e) => return usage_error(&e.to_string()),
    };
    if let Err(e) = mcp_bridge::telemetry::init(&config.log_filter, config.log_format) {
        return usage_error(&e);
    }
    match mcp_bridge::rlimit::raise_nofile() {
        Ok((before, after)) if before != after => {
            tracing::debug!(before, after, "raised the open-files limit")
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-files limit"),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.worker_threads)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mcp-bridge: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(mcp_bridge::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "mcp-bridge failed");
            eprintln!("mcp-bridge: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `mcp-bridge probe`: exit 0 when the bridge answers its health check, 1 when not.
fn probe() -> ExitCode {
    use mcp_bridge::probe::ProbeCli;
    let cli = match ProbeCli::try_parse_from(std::env::args_os().skip(1)) {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => return usage_error(&first_line(&e.to_string())),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mcp-bridge probe: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(mcp_bridge::probe::run(&cli)) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(why) => {
            eprintln!("mcp-bridge probe: {why}");
            ExitCode::FAILURE
        }
    }
}

/// `mcp-bridge deploy`: render deploy artifacts; exit 64 on a bad flag, 1 when writing fails.
fn deploy() -> ExitCode {
    use mcp_bridge::deploy::{DeployCli, DeployError, Output};
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cli = match DeployCli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => return usage_error(&first_line(&e.to_string())),
    };
    match mcp_bridge::deploy::run(cli, args) {
        Ok(Output::Stdout(text)) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Ok(Output::Written(paths)) => {
            for path in paths {
                eprintln!("wrote {}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(DeployError::Usage(m)) => usage_error(&m),
        Err(e) => {
            eprintln!("mcp-bridge deploy: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `mcp-bridge connect URL`: a stdio server forwarding to a remote one. Exit 0 when stdin
/// closes; 64 usage, 69 unreachable, 76 not MCP, 77 credentials refused, 1 runtime failure.
fn connect() -> ExitCode {
    use mcp_bridge::connect::{ConnectCli, ConnectConfig};
    let cli = match ConnectCli::try_parse_from(std::env::args_os().skip(1)) {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => return usage_error(&first_line(&e.to_string())),
    };
    let config = match ConnectConfig::from_cli(&cli) {
        Ok(config) => config,
        Err(e) => return usage_error(&e.to_string()),
    };
    if let Err(e) = mcp_bridge::telemetry::init(&cli.log_level, cli.log_format) {
        return usage_error(&e);
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mcp-bridge connect: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(mcp_bridge::connect::run(config));
    // A blocking read of stdin may still be pending (SIGTERM with stdin open): do not wait for it.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mcp-bridge connect: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn usage_error(message: &str) -> ExitCode {
    eprintln!("mcp-bridge: {message} (see mcp-bridge --help)");
    ExitCode::from(EXIT_USAGE)
}

/// clap renders errors over several lines (message, usage, hint); keep the message line.
fn first_line(rendered: &str) -> String {
    // clap's first paragraph: the message, then indented details such as the missing flags.
    let mut lines = rendered.lines().skip_while(|l| l.trim().is_empty());
    let first = lines.next().unwrap_or("invalid arguments");
    let details: Vec<&str> = lines
        .take_while(|l| l.starts_with("  "))
        .map(str::trim)
        .collect();
    let line = first.trim_start_matches("error: ");
    match details.is_empty() {
        true => line.to_string(),
        false => format!("{line} {}", details.join(", ")),
    }
}
