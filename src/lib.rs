//! mcp-bridge: serve a stdio MCP server over Streamable HTTP, many client sessions sharing one
//! child process (see DESIGN.md in the team's shared notes for the architecture).
//!
//! The binary is a thin wrapper: it parses [`cli::Cli`], validates it into [`config::Config`],
//! sets up [`telemetry`] and calls [`run`].

pub mod app;
pub mod auth;
pub mod child;
pub mod cli;
pub mod config;
pub mod connect;
pub mod cors;
pub mod deploy;
pub mod error;
pub mod guard;
pub mod health;
pub mod jsonrpc;
pub mod metrics;
pub mod oauth;
pub mod probe;
pub mod protocol;
pub mod rlimit;
pub mod router;
pub mod session;
pub mod shutdown;
pub mod supervisor;
pub mod telemetry;
pub mod tls;
pub mod transport;

pub use app::{run, serve};
