//! `mcp-bridge deploy k8s|fly|compose [OPTIONS] -- CMD [ARGS...]`: renders the artifacts that
//! run the serve job on Kubernetes, Fly.io Machines or Docker Compose (DESIGN.md section 6).
//!
//! Owns: the deploy flags ([`DeployCli`]), their validation into a [`Spec`], and writing the
//! rendered files. The renderers ([`k8s`], [`fly`], [`compose`]) are pure functions of a
//! [`Spec`], golden-tested. Every target runs the image built from `docker/Dockerfile`, whose
//! entrypoint is `mcp-bridge --host 0.0.0.0 --`: the child command becomes the container's
//! arguments and bridge options travel as `MCP_BRIDGE_*` environment variables.

pub mod compose;
pub mod fly;
pub mod k8s;
mod spec;
mod yaml;

pub use spec::{DeployError, Egress, Isolation, SecretEnv, Spec};

use clap::{Parser, ValueEnum};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Image the artifacts run when `--image` is not given: the `node` target of
/// `docker/Dockerfile`, tagged as the README's build command tags it.
pub const DEFAULT_IMAGE: &str = "mcp-bridge:node";
/// Default name of the app, Deployment, service and so on.
pub const DEFAULT_NAME: &str = "mcp-bridge";
/// Numeric uid and gid of the image's non-root user (`docker/Dockerfile`).
pub const IMAGE_UID: u64 = 10001;
/// The image's writable cache directory (npm, uv, `HOME`): a tmpfs or emptyDir is mounted here
/// so the root filesystem can be read-only.
pub const CACHE_DIR: &str = "/tmp";
/// Seconds the platform waits after SIGTERM beyond the bridge's own shutdown grace, before it
/// sends SIGKILL: time for the bridge to log, flush and exit after the child is gone.
pub const STOP_MARGIN_SECS: u64 = 5;

/// The deploy target, a closed set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Target {
    /// Kubernetes: a kustomization of Deployment, Service, Ingress, NetworkPolicy, HPA and PDB.
    K8s,
    /// Fly.io: `fly.toml` and a Machines API create-machine request body.
    Fly,
    /// Docker Compose: one `compose.yaml`.
    Compose,
}

/// Flags of `mcp-bridge deploy`; validated into a [`Spec`] by [`Spec::from_cli`].
#[derive(Parser, Debug)]
#[command(
    name = "mcp-bridge deploy",
    bin_name = "mcp-bridge deploy",
    about = "Render deploy artifacts (Kubernetes, Fly.io, Docker Compose) that run CMD behind mcp-bridge"
)]
pub struct DeployCli {
    /// Where to deploy.
    #[arg(value_enum)]
    pub target: Target,
    /// Name of the app and its resources (lowercase letters, digits and '-', at most 63).
    #[arg(long, default_value = DEFAULT_NAME)]
    pub name: String,
    /// Container image built from docker/Dockerfile (a registry path for k8s and fly).
    #[arg(long, default_value = DEFAULT_IMAGE)]
    pub image: String,
    /// Port the bridge listens on inside the container.
    #[arg(long, default_value_t = crate::cli::DEFAULT_PORT)]
    pub port: u16,
    /// Replicas (k8s: the Deployment's and the autoscaler's minimum; fly: machines kept running).
    #[arg(long, default_value_t = 1)]
    pub replicas: u32,
    /// Most replicas the k8s autoscaler may run (default: three times --replicas).
    #[arg(long)]
    pub max_replicas: Option<u32>,
    /// Environment variable for the bridge and its child, K=V (repeatable).
    #[arg(long = "env", value_name = "K=V")]
    pub env: Vec<String>,
    /// Environment variable taken from a secret, K=SECRET:KEY (repeatable).
    #[arg(long = "secret-env", value_name = "K=SECRET:KEY")]
    pub secret_env: Vec<String>,
    /// How sessions map to children: shared (one child), session (one per session) or
    /// stateless (no sessions, any replica answers any request).
    #[arg(long, value_enum, default_value_t = Isolation::Shared)]
    pub isolation: Isolation,
    /// The bridge's shutdown grace (--shutdown-grace); the platform's stop timeout is set above it.
    #[arg(long, default_value = crate::cli::DEFAULT_SHUTDOWN_GRACE, value_parser = humantime::parse_duration)]
    pub shutdown_grace: Duration,
    /// Memory limit in MiB (k8s requests a quarter of it).
    #[arg(long, default_value_t = 512)]
    pub memory: u32,
    /// CPU limit in cores, e.g. 1 or 0.5 (k8s requests a tenth of it; fly rounds up to whole CPUs).
    #[arg(long, default_value_t = 1.0)]
    pub cpus: f64,
    /// Public host name: the k8s Ingress rule's host (with TLS from secret NAME-tls).
    #[arg(long)]
    pub domain: Option<String>,
    /// k8s ingress class (ingress-nginx's session affinity annotations are emitted).
    #[arg(long, default_value = "nginx")]
    pub ingress_class: String,
    /// k8s namespace of the ingress controller, the only one allowed in by the NetworkPolicy.
    #[arg(long, default_value = "ingress-nginx")]
    pub ingress_namespace: String,
    /// k8s namespace of Prometheus, also allowed in (to scrape /metrics).
    #[arg(long, default_value = "monitoring")]
    pub monitoring_namespace: String,
    /// k8s egress allowed besides DNS: `all` (default; npx and uvx fetch packages at start),
    /// `none`, or a CIDR (repeatable).
    #[arg(long = "egress", value_name = "all|none|CIDR")]
    pub egress: Vec<String>,
    /// Fly.io primary region, e.g. iad.
    #[arg(long)]
    pub region: Option<String>,
    /// Write the files into this directory (created if missing) instead of printing them.
    #[arg(short = 'o', long = "output", value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Overwrite files that already exist in the output directory.
    #[arg(long)]
    pub force: bool,
    /// The MCP server command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// One rendered file: its name (relative to the output directory) and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    /// File name, e.g. `deployment.yaml`.
    pub path: &'static str,
    /// The file's contents, ending with a newline.
    pub contents: String,
}

/// What [`run`] produced.
#[derive(Debug)]
pub enum Output {
    /// No `-o`: the text to print on stdout ([`to_stdout`]).
    Stdout(String),
    /// `-o DIR`: the files written.
    Written(Vec<PathBuf>),
}

/// `mcp-bridge deploy`: validates `cli`, renders, and writes into `-o DIR` or returns the text
/// to print. `invocation` is the argument list after `mcp-bridge`, quoted into each file's
/// header. Errors: [`DeployError::Usage`] for a bad flag (exit 64), [`DeployError::Exists`] or
/// [`DeployError::Io`] when writing fails (exit 1).
pub fn run(cli: DeployCli, invocation: Vec<String>) -> Result<Output, DeployError> {
    let output = cli.output.clone();
    let force = cli.force;
    let spec = Spec::from_cli(cli, invocation)?;
    let artifacts = render(&spec);
    match output {
        Some(dir) => write_all(&dir, &artifacts, force).map(Output::Written),
        None => Ok(Output::Stdout(to_stdout(spec.target, &artifacts))),
    }
}

/// Renders every file of `spec.target`.
pub fn render(spec: &Spec) -> Vec<Artifact> {
    match spec.target {
        Target::K8s => k8s::render(spec),
        Target::Fly => fly::render(spec),
        Target::Compose => compose::render(spec),
    }
}

/// What `deploy` prints when no `-o` is given: Kubernetes manifests as one multi-document
/// stream (for `kubectl apply -f -`; the kustomization, which names files, is left out), a
/// single compose file as it is, several files each under a `==> NAME <==` line.
pub fn to_stdout(target: Target, artifacts: &[Artifact]) -> String {
    match target {
        Target::K8s => artifacts
            .iter()
            .filter(|a| a.path != k8s::KUSTOMIZATION)
            .map(|a| a.contents.as_str())
            .collect::<Vec<_>>()
            .join("---\n"),
        _ if artifacts.len() == 1 => artifacts[0].contents.clone(),
        _ => artifacts
            .iter()
            .map(|a| format!("==> {} <==\n{}", a.path, a.contents))
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

/// Writes `artifacts` into `dir` (created if missing). Returns the paths written. Errors: a
/// file that exists while `force` is false (nothing is written then), or an I/O error naming
/// the path.
pub fn write_all(
    dir: &Path,
    artifacts: &[Artifact],
    force: bool,
) -> Result<Vec<PathBuf>, DeployError> {
    let io = |path: &Path, e: std::io::Error| DeployError::Io(format!("{}: {e}", path.display()));
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let paths: Vec<PathBuf> = artifacts.iter().map(|a| dir.join(a.path)).collect();
    if !force {
        if let Some(existing) = paths.iter().find(|p| p.exists()) {
            return Err(DeployError::Exists(existing.display().to_string()));
        }
    }
    for (artifact, path) in artifacts.iter().zip(&paths) {
        std::fs::write(path, &artifact.contents).map_err(|e| io(path, e))?;
    }
    Ok(paths)
}

/// The command line that produced a rendering, for the header comment of each file (so a
/// reader knows how to regenerate it). Arguments are shell-quoted when needed.
pub fn command_line(args: &[String]) -> String {
    args.iter()
        .map(|a| shell_quote(a))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `word` as a POSIX shell word: unchanged when it has only safe characters, else in single
/// quotes.
pub fn shell_quote(word: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "@%+=:,./_-".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests;
