//! The validated deploy configuration: [`DeployCli`] flags checked once, so the renderers never
//! see a name Kubernetes or Fly.io would refuse, a duplicate variable or an impossible replica
//! count. Every refusal says which flag is wrong and what would be accepted.

use super::{DeployCli, Target};
use clap::ValueEnum;
use std::time::Duration;

/// How sessions map to children, as `--isolation` and `--stateless` set it on the bridge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Isolation {
    /// One child for every session (the bridge's default).
    Shared,
    /// One child per session (`MCP_BRIDGE_ISOLATION=session`).
    Session,
    /// No sessions (`MCP_BRIDGE_STATELESS=true`): any replica answers any request.
    Stateless,
}

/// Egress the Kubernetes NetworkPolicy allows besides DNS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Egress {
    /// Anywhere (npx and uvx fetch packages when the container starts).
    All,
    /// DNS only.
    None,
    /// DNS and these CIDR blocks.
    Cidrs(Vec<String>),
}

/// An environment variable read from a secret: `--secret-env VAR=SECRET:KEY`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretEnv {
    /// The variable's name.
    pub var: String,
    /// The secret's name (Kubernetes Secret).
    pub secret: String,
    /// The key inside the secret.
    pub key: String,
}

/// Why a deploy could not be rendered or written.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// A flag's value is invalid; the message names the flag (exit 64).
    #[error("{0}")]
    Usage(String),
    /// An output file exists and `--force` was not given.
    #[error("{0} exists; pass --force to overwrite it")]
    Exists(String),
    /// Writing a file failed.
    #[error("{0}")]
    Io(String),
}

/// Everything a renderer needs, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct Spec {
    /// The target.
    pub target: Target,
    /// DNS-1123 label, at most 63 characters.
    pub name: String,
    /// Container image reference.
    pub image: String,
    /// Listening port inside the container.
    pub port: u16,
    /// Replicas, at least 1.
    pub replicas: u32,
    /// Autoscaler maximum, at least `replicas`.
    pub max_replicas: u32,
    /// Plain environment variables in order: the bridge's own (from the flags) first.
    pub env: Vec<(String, String)>,
    /// Variables from secrets.
    pub secrets: Vec<SecretEnv>,
    /// Session isolation.
    pub isolation: Isolation,
    /// The bridge's shutdown grace.
    pub shutdown_grace: Duration,
    /// Memory limit, MiB.
    pub memory_mib: u32,
    /// CPU limit, thousandths of a core.
    pub cpu_millis: u32,
    /// Public host name for the Ingress.
    pub domain: Option<String>,
    /// Ingress class name.
    pub ingress_class: String,
    /// Namespace of the ingress controller.
    pub ingress_namespace: String,
    /// Namespace of Prometheus.
    pub monitoring_namespace: String,
    /// NetworkPolicy egress.
    pub egress: Egress,
    /// Fly.io primary region.
    pub region: Option<String>,
    /// The child command and its arguments (never empty).
    pub command: Vec<String>,
    /// The `mcp-bridge deploy ...` arguments, for the files' header comments.
    pub invocation: Vec<String>,
}

/// Variables the renderers set from flags; setting them with `--env` would contradict them.
const OWN_VARS: [(&str, &str); 6] = [
    (
        SESSION_SECRET_VAR,
        "--secret-env (a secret never goes into a manifest as plain text)",
    ),
    ("MCP_BRIDGE_PORT", "--port"),
    ("MCP_BRIDGE_HOST", "nothing: the image binds 0.0.0.0"),
    ("MCP_BRIDGE_SHUTDOWN_GRACE", "--shutdown-grace"),
    ("MCP_BRIDGE_ISOLATION", "--isolation"),
    ("MCP_BRIDGE_STATELESS", "--isolation stateless"),
];

/// The variable holding the secret replicas share to adopt each other's sessions
/// ([`crate::session::seal`]).
const SESSION_SECRET_VAR: &str = crate::session::seal::SECRET_ENV;

/// Fly.io's largest `kill_timeout`, in seconds.
const FLY_MAX_KILL_TIMEOUT_SECS: u64 = 300;
/// The largest shared-CPU Fly Machine: CPUs and MiB.
const FLY_MAX_SHARED: (f64, u32) = (8.0, 16384);

impl Spec {
    /// Validates `cli`; `invocation` is the argument list after `mcp-bridge` (for headers).
    /// Errors: [`DeployError::Usage`] naming the flag and what it accepts.
    pub fn from_cli(cli: DeployCli, invocation: Vec<String>) -> Result<Spec, DeployError> {
        let usage = |m: String| DeployError::Usage(m);
        check_label("--name", &cli.name)?;
        if cli.image.is_empty() || cli.image.chars().any(|c| c.is_whitespace()) {
            return Err(usage(format!(
                "--image {:?} is not an image reference",
                cli.image
            )));
        }
        if cli.port == 0 {
            return Err(usage("--port must be 1-65535".into()));
        }
        let replicas = cli.replicas;
        let max_replicas = cli.max_replicas.unwrap_or(replicas.saturating_mul(3));
        if replicas == 0 || max_replicas < replicas {
            return Err(usage(format!(
                "--replicas must be at least 1 and --max-replicas at least --replicas (got {replicas} and {max_replicas})"
            )));
        }
        check_replicas(cli.target, replicas, cli.isolation)?;
        if !(cli.cpus.is_finite() && cli.cpus >= 0.01) || cli.memory < 32 {
            return Err(usage(format!(
                "--cpus must be at least 0.01 and --memory at least 32 (MiB); got {} and {}",
                cli.cpus, cli.memory
            )));
        }
        let mut secrets = cli
            .secret_env
            .iter()
            .map(|s| parse_secret_env(s))
            .collect::<Result<Vec<_>, _>>()?;
        // Kubernetes spreads sessions over replicas by a hash of Mcp-Session-Id; they hand new
        // sessions over with a shared secret, from the Secret NAME-session unless given.
        let sessions = cli.isolation != Isolation::Stateless;
        if cli.target == Target::K8s
            && sessions
            && !secrets.iter().any(|s| s.var == SESSION_SECRET_VAR)
        {
            secrets.push(SecretEnv {
                var: SESSION_SECRET_VAR.to_string(),
                secret: format!("{}-session", cli.name),
                key: "secret".to_string(),
            });
        }
        let user_env = cli
            .env
            .iter()
            .map(|kv| parse_env(kv))
            .collect::<Result<Vec<_>, _>>()?;
        // A default such as MCP_BRIDGE_LOG_FORMAT gives way to the user's own value.
        let mut env = bridge_env(&cli);
        env.retain(|(k, _)| !user_env.iter().any(|(u, _)| u == k));
        env.extend(user_env);
        check_unique(&env, &secrets)?;
        if let Some(domain) = &cli.domain {
            check_domain(domain)?;
        }
        for (flag, ns) in [
            ("--ingress-namespace", &cli.ingress_namespace),
            ("--monitoring-namespace", &cli.monitoring_namespace),
        ] {
            check_label(flag, ns)?;
        }
        if cli.target == Target::Fly {
            check_fly_size(&cli)?;
        }
        if let Some(region) = &cli.region {
            if region.is_empty() || !region.chars().all(|c| c.is_ascii_lowercase()) {
                return Err(usage(format!(
                    "--region {region:?} is not a Fly.io region code (e.g. iad)"
                )));
            }
        }
        Ok(Spec {
            target: cli.target,
            egress: parse_egress(&cli.egress)?,
            cpu_millis: (cli.cpus * 1000.0).round() as u32,
            memory_mib: cli.memory,
            name: cli.name,
            image: cli.image,
            port: cli.port,
            replicas,
            max_replicas,
            env,
            secrets,
            isolation: cli.isolation,
            shutdown_grace: cli.shutdown_grace,
            domain: cli.domain,
            ingress_class: cli.ingress_class,
            ingress_namespace: cli.ingress_namespace,
            monitoring_namespace: cli.monitoring_namespace,
            region: cli.region,
            command: cli.command,
            invocation,
        })
    }

    /// Seconds the platform waits after SIGTERM before SIGKILL: the grace rounded up, plus
    /// [`super::STOP_MARGIN_SECS`].
    pub fn stop_timeout_secs(&self) -> u64 {
        stop_timeout_secs(self.shutdown_grace)
    }

    /// True when sessions live on one replica, so requests need affinity.
    pub fn has_sessions(&self) -> bool {
        self.isolation != Isolation::Stateless
    }

    /// The header comment every file starts with (`#` lines), naming the command that made it.
    pub fn header(&self) -> String {
        format!(
            "# Rendered by `mcp-bridge {}`.\n# Regenerate rather than edit; see README.md, \"Deploy\".\n",
            super::command_line(&self.invocation)
        )
    }
}

/// The bridge options the flags translate into, as the image's entrypoint reads them.
fn bridge_env(cli: &DeployCli) -> Vec<(String, String)> {
    let mut env = Vec::new();
    let mut set = |k: &str, v: String| env.push((k.to_string(), v));
    if cli.port != crate::cli::DEFAULT_PORT {
        set("MCP_BRIDGE_PORT", cli.port.to_string());
    }
    let default_grace = humantime::parse_duration(crate::cli::DEFAULT_SHUTDOWN_GRACE);
    if default_grace.ok() != Some(cli.shutdown_grace) {
        set(
            "MCP_BRIDGE_SHUTDOWN_GRACE",
            humantime::format_duration(cli.shutdown_grace).to_string(),
        );
    }
    match cli.isolation {
        Isolation::Shared => {}
        Isolation::Session => set("MCP_BRIDGE_ISOLATION", "session".into()),
        Isolation::Stateless => set("MCP_BRIDGE_STATELESS", "true".into()),
    }
    // Structured logs for the platform's log pipeline.
    set("MCP_BRIDGE_LOG_FORMAT", "json".into());
    env
}

/// Session state lives in one replica's memory: more than one needs request affinity, which
/// only the Kubernetes Ingress provides.
fn check_replicas(target: Target, replicas: u32, isolation: Isolation) -> Result<(), DeployError> {
    let why = match target {
        _ if replicas == 1 || isolation == Isolation::Stateless => return Ok(()),
        Target::K8s => return Ok(()),
        Target::Fly => "Fly.io's proxy cannot keep a session on one machine",
        Target::Compose => "Compose publishes one host port and has no session affinity",
    };
    Err(DeployError::Usage(format!(
        "--replicas {replicas} needs --isolation stateless here: {why}"
    )))
}

/// Seconds to wait after SIGTERM for a bridge with shutdown grace `grace`: rounded up, plus
/// [`super::STOP_MARGIN_SECS`].
fn stop_timeout_secs(grace: std::time::Duration) -> u64 {
    grace.as_secs() + u64::from(grace.subsec_nanos() > 0) + super::STOP_MARGIN_SECS
}

/// Fly.io's limits: `kill_timeout` at most 300 s, a shared-CPU Machine at most 8 CPUs and
/// 16 GiB.
fn check_fly_size(cli: &DeployCli) -> Result<(), DeployError> {
    let grace = cli.shutdown_grace;
    let kill = stop_timeout_secs(grace);
    if kill > FLY_MAX_KILL_TIMEOUT_SECS {
        return Err(DeployError::Usage(format!(
            "--shutdown-grace {} needs a kill_timeout of {kill} s; Fly.io allows at most {FLY_MAX_KILL_TIMEOUT_SECS} s (grace + {} s)",
            humantime::format_duration(grace),
            super::STOP_MARGIN_SECS
        )));
    }
    let (cpus, mib) = FLY_MAX_SHARED;
    if cli.cpus > cpus || cli.memory > mib {
        return Err(DeployError::Usage(format!(
            "--cpus {} --memory {}: the largest shared-CPU Fly Machine has {cpus} CPUs and {mib} MiB",
            cli.cpus, cli.memory
        )));
    }
    Ok(())
}

fn check_label(flag: &str, value: &str) -> Result<(), DeployError> {
    let ok = (1..=63).contains(&value.len())
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !value.starts_with('-')
        && !value.ends_with('-')
        && value.starts_with(|c: char| c.is_ascii_lowercase());
    match ok {
        true => Ok(()),
        false => Err(DeployError::Usage(format!(
            "{flag} {value:?}: use 1-63 lowercase letters, digits and '-', starting with a letter and not ending with '-'"
        ))),
    }
}

fn check_domain(domain: &str) -> Result<(), DeployError> {
    let labels_ok = domain.split('.').all(|l| {
        (1..=63).contains(&l.len())
            && l.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    });
    match labels_ok && domain.len() <= 253 {
        true => Ok(()),
        false => Err(DeployError::Usage(format!(
            "--domain {domain:?} is not a lowercase DNS name (e.g. mcp.example.com)"
        ))),
    }
}

fn check_var(flag: &str, var: &str) -> Result<(), DeployError> {
    let ok = var.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !ok {
        return Err(DeployError::Usage(format!(
            "{flag}: {var:?} is not an environment variable name (letters, digits, '_')"
        )));
    }
    match OWN_VARS.iter().find(|(v, _)| *v == var) {
        Some((_, instead)) => Err(DeployError::Usage(format!(
            "{flag}: {var} is set by the renderer; use {instead}"
        ))),
        None => Ok(()),
    }
}

fn parse_env(kv: &str) -> Result<(String, String), DeployError> {
    let (k, v) = kv
        .split_once('=')
        .ok_or_else(|| DeployError::Usage(format!("--env {kv:?}: expected K=V")))?;
    check_var("--env", k)?;
    Ok((k.to_string(), v.to_string()))
}

fn parse_secret_env(spec: &str) -> Result<SecretEnv, DeployError> {
    let bad = || {
        DeployError::Usage(format!(
            "--secret-env {spec:?}: expected VAR=SECRET:KEY (e.g. API_KEY=my-secrets:api-key)"
        ))
    };
    let (var, rest) = spec.split_once('=').ok_or_else(bad)?;
    let (secret, key) = rest.split_once(':').ok_or_else(bad)?;
    check_var("--secret-env", var)?;
    check_label("--secret-env's SECRET", secret)?;
    let key_ok = !key.is_empty()
        && key.len() <= 253
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c));
    if !key_ok {
        return Err(DeployError::Usage(format!(
            "--secret-env {spec:?}: KEY must be letters, digits, '-', '.' or '_'"
        )));
    }
    Ok(SecretEnv {
        var: var.to_string(),
        secret: secret.to_string(),
        key: key.to_string(),
    })
}

fn check_unique(env: &[(String, String)], secrets: &[SecretEnv]) -> Result<(), DeployError> {
    let mut seen = std::collections::HashSet::new();
    let names = env
        .iter()
        .map(|(k, _)| k)
        .chain(secrets.iter().map(|s| &s.var));
    for name in names {
        if !seen.insert(name) {
            return Err(DeployError::Usage(format!(
                "{name} is given twice (--env and --secret-env names must be unique)"
            )));
        }
    }
    Ok(())
}

fn parse_egress(values: &[String]) -> Result<Egress, DeployError> {
    match values {
        [] => Ok(Egress::All),
        [one] if one == "all" => Ok(Egress::All),
        [one] if one == "none" => Ok(Egress::None),
        cidrs => {
            for cidr in cidrs {
                if !is_cidr(cidr) {
                    return Err(DeployError::Usage(format!(
                        "--egress {cidr:?}: expected all, none, or CIDRs such as 10.0.0.0/8 (all and none stand alone)"
                    )));
                }
            }
            Ok(Egress::Cidrs(cidrs.to_vec()))
        }
    }
}

fn is_cidr(text: &str) -> bool {
    let Some((addr, len)) = text.split_once('/') else {
        return false;
    };
    let max = match addr.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(_)) => 32,
        Ok(std::net::IpAddr::V6(_)) => 128,
        Err(_) => return false,
    };
    len.parse::<u8>().is_ok_and(|l| l <= max)
}
