//! Integration tests: the real `mcp-bridge` binary on `127.0.0.1:0`, driven over HTTP by
//! reqwest, the official TypeScript and Python SDK clients, and raw requests, in front of the
//! `echo_server` example child or `@modelcontextprotocol/server-everything`.

mod support;

mod affinity;
mod child_faults;
mod cli;
mod concurrency;
mod connect;
mod features;
mod http_edges;
mod interop;
mod modes;
mod oauth;
mod observability;
mod proxy;
mod reliability;
mod routing;
mod security;
mod shutdown;
mod streams;
mod transports;
