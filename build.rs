//! Records the git commit the binary is built from, for `mcp_bridge_build_info` and
//! `/healthz`: `MCP_BRIDGE_GIT_SHA` from the environment when set (e.g. a container build
//! without `.git`), else `git rev-parse --short=12 HEAD`, else `unknown`.

fn main() {
    println!("cargo:rerun-if-env-changed=MCP_BRIDGE_GIT_SHA");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
    let sha = std::env::var("MCP_BRIDGE_GIT_SHA")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| {
            let out = std::process::Command::new("git")
                .args(["rev-parse", "--short=12", "HEAD"])
                .output()
                .ok()?;
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        })
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric()))
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=MCP_BRIDGE_GIT_SHA={sha}");
}
