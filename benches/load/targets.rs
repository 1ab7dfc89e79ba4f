//! The servers under test: mcp-bridge and the peer proxies, started on a free loopback port in
//! their own process group and stopped (SIGTERM, then SIGKILL to the group) when dropped.

use crate::client::Transport;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A server to measure: how to start it and where to reach it.
pub struct Target {
    /// Name in tables, e.g. `mcp-bridge` or `supergateway 4.0.0`.
    pub name: String,
    /// Client transport to drive it with.
    pub transport: Transport,
    /// Program and arguments; `{port}` is replaced by the port, `{child}` by the child's path.
    pub argv: Vec<String>,
    /// Environment variables added for the program.
    pub env: Vec<(String, String)>,
    /// URL path of the endpoint (`/mcp`, `/sse`, `/ws`); unused for `direct`.
    pub path: String,
}

/// Path of the release `mcp-bridge` this bench was built with.
pub fn bridge_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_mcp-bridge"))
}

/// Returns the path of the release `echo_server` example, building it first unless it is newer
/// than its source. (The example uses no code of the library, so its source is all that matters;
/// asking cargo on every run would rebuild the library, which cargo builds for examples with a
/// different feature set than for this bench.)
pub fn echo_server() -> PathBuf {
    let bin = bridge_binary()
        .parent()
        .unwrap()
        .join("examples/echo_server");
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/echo_server.rs");
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if let (Some(built), Some(written)) = (modified(&bin), modified(&source)) {
        if built >= written {
            return bin;
        }
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--profile",
            "bench",
            "--example",
            "echo_server",
            "--quiet",
        ])
        .status()
        .expect("running cargo build");
    assert!(status.success(), "building echo_server failed");
    bin
}

impl Target {
    /// mcp-bridge in its default (shared child) mode, driven over `transport`.
    pub fn bridge(transport: Transport, extra: &[&str]) -> Self {
        let mut argv = vec![
            bridge_binary().display().to_string(),
            "--port".into(),
            "{port}".into(),
            "--log-level".into(),
            "warn".into(),
        ];
        argv.extend(extra.iter().map(|s| s.to_string()));
        argv.extend(["--".into(), "{child}".into()]);
        let path = match transport {
            Transport::Sse => "/sse",
            Transport::Ws => "/ws",
            _ => "/mcp",
        };
        Target {
            name: "mcp-bridge".into(),
            transport,
            argv,
            env: Vec::new(),
            path: path.into(),
        }
    }

    /// The child driven over its own pipes.
    pub fn direct() -> Self {
        Target {
            name: "direct (child's pipes)".into(),
            transport: Transport::Direct,
            argv: vec!["{child}".into()],
            env: Vec::new(),
            path: String::new(),
        }
    }

    /// A URL for `port`, or the child command line for `direct`.
    pub fn url(&self, port: u16) -> String {
        let scheme = if self.transport == Transport::Ws {
            "ws"
        } else {
            "http"
        };
        format!("{scheme}://127.0.0.1:{port}{}", self.path)
    }

    /// Starts the target on a free port; returns the running server (`None` for `direct`, whose
    /// child the client spawns itself).
    pub fn start(&self, child: &Path) -> (Option<Server>, u16) {
        if self.transport == Transport::Direct {
            return (None, 0);
        }
        let port = free_port();
        let argv: Vec<String> = self
            .argv
            .iter()
            .map(|a| {
                a.replace("{port}", &port.to_string())
                    .replace("{child}", &child.display().to_string())
            })
            .collect();
        let process = Command::new(&argv[0])
            .args(&argv[1..])
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", argv[0]));
        (Some(Server { process }), port)
    }
}

use std::os::unix::process::CommandExt;

/// A port that was free a moment ago on 127.0.0.1.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running server process, leader of its own process group.
pub struct Server {
    process: Child,
}

impl Server {
    /// The server's pid (also its process group id).
    pub fn pid(&self) -> i32 {
        self.process.id() as i32
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        use nix::sys::signal::{killpg, Signal};
        use nix::unistd::Pid;
        let group = Pid::from_raw(self.pid());
        let _ = killpg(group, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.process.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Whatever is left of the group (a peer's children included) is killed.
        let _ = killpg(group, Signal::SIGKILL);
        let _ = self.process.wait();
    }
}
