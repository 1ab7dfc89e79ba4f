//! Fly.io renderer: `fly.toml` for `fly deploy`, and `machine.json`, the body of the Machines
//! API's create-machine request (`POST /v1/apps/{app}/machines`) for the same machine. Both are
//! checked in CI against this repository's schemas (`tests/deploy/schemas/`), written from
//! Fly.io's configuration reference and Machines API documentation.
//!
//! Invariants: the service listens on the bridge port and is checked on `/healthz`; metrics are
//! scraped from `/metrics`; the kill signal is SIGTERM with a timeout above the bridge's grace.
//! Secrets are not in either file: `fly secrets set` makes them environment variables.

use super::{Artifact, Spec};
use serde_json::json;
use toml::{Table, Value};

/// The fly.toml file name.
pub const FLY_TOML: &str = "fly.toml";
/// The Machines API request body file name.
pub const MACHINE_JSON: &str = "machine.json";

/// Renders `fly.toml` and `machine.json`.
pub fn render(spec: &Spec) -> Vec<Artifact> {
    vec![
        Artifact {
            path: FLY_TOML,
            contents: format!(
                "{}{}{}",
                spec.header(),
                secrets_comment(spec),
                toml::to_string(&fly_toml(spec)).expect("a TOML table built in memory serializes")
            ),
        },
        Artifact {
            path: MACHINE_JSON,
            contents: format!(
                "{}\n",
                serde_json::to_string_pretty(&machine(spec)).expect("JSON values serialize")
            ),
        },
    ]
}

fn secrets_comment(spec: &Spec) -> String {
    let sets: Vec<String> = spec
        .secrets
        .iter()
        .map(|s| {
            format!(
                "#   fly secrets set --app {} {}=...  # {}:{}\n",
                spec.name, s.var, s.secret, s.key
            )
        })
        .collect();
    match sets.is_empty() {
        true => String::new(),
        false => format!(
            "# Set the secret variables before the first deploy:\n{}",
            sets.concat()
        ),
    }
}

fn table<const N: usize>(entries: [(&str, Value); N]) -> Value {
    Value::Table(
        entries
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    )
}

fn s(text: impl Into<String>) -> Value {
    Value::String(text.into())
}

fn int(n: impl Into<i64>) -> Value {
    Value::Integer(n.into())
}

/// CPU counts of Fly.io's shared-CPU Machines (fly.toml reference, `[[vm]] cpus`); Fly refuses
/// others, such as 3.
const SHARED_CPUS: [u32; 4] = [1, 2, 4, 8];
/// Fly.io's shared-CPU memory step: `memory_mb` is a multiple of it, and at least this per CPU.
const MEMORY_STEP_MIB: u32 = 256;
/// The most memory Fly.io gives a shared CPU.
const MAX_MIB_PER_SHARED_CPU: u32 = 2048;

/// A shared-CPU Fly Machine size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Guest {
    cpus: u32,
    memory_mib: u32,
}

/// The smallest shared-CPU size that holds the spec's CPU limit (rounded up to a size Fly offers)
/// and its memory (rounded up to Fly's 256 MiB step and per-CPU minimum). The spec refuses more
/// than 8 CPUs or 16 GiB, which no shared size holds.
fn guest(spec: &Spec) -> Guest {
    let wanted = spec.cpu_millis.div_ceil(1000).max(1);
    let memory = spec.memory_mib.div_ceil(MEMORY_STEP_MIB) * MEMORY_STEP_MIB;
    let cpus = SHARED_CPUS
        .into_iter()
        .find(|&c| c >= wanted && c * MAX_MIB_PER_SHARED_CPU >= memory)
        .unwrap_or(SHARED_CPUS[SHARED_CPUS.len() - 1]);
    Guest {
        cpus,
        memory_mib: memory.max(cpus * MEMORY_STEP_MIB),
    }
}

/// `auto_stop_machines`: machines with sessions stay up, as stopping one ends its sessions;
/// stateless machines may stop when idle.
fn auto_stop(spec: &Spec) -> &'static str {
    match spec.has_sessions() {
        true => "off",
        false => "stop",
    }
}

fn fly_toml(spec: &Spec) -> Table {
    let mut doc = Table::new();
    doc.insert("app".into(), s(&spec.name));
    if let Some(region) = &spec.region {
        doc.insert("primary_region".into(), s(region));
    }
    doc.insert("kill_signal".into(), s("SIGTERM"));
    doc.insert("kill_timeout".into(), int(spec.stop_timeout_secs() as i64));
    doc.insert("build".into(), table([("image", s(&spec.image))]));
    let env: Table = spec.env.iter().map(|(k, v)| (k.clone(), s(v))).collect();
    doc.insert("env".into(), Value::Table(env));
    let cmd = super::command_line(&spec.command);
    doc.insert("processes".into(), table([("app", s(cmd))]));
    let check = table([
        ("grace_period", s("30s")),
        ("interval", s("15s")),
        ("method", s("GET")),
        ("timeout", s("2s")),
        ("path", s("/healthz")),
    ]);
    let service = table([
        ("internal_port", int(spec.port)),
        ("force_https", Value::Boolean(true)),
        ("auto_stop_machines", s(auto_stop(spec))),
        ("auto_start_machines", Value::Boolean(true)),
        ("min_machines_running", int(spec.replicas)),
        ("processes", Value::Array(vec![s("app")])),
        (
            "concurrency",
            table([
                ("type", s("requests")),
                ("soft_limit", int(200)),
                ("hard_limit", int(250)),
            ]),
        ),
        ("checks", Value::Array(vec![check])),
    ]);
    doc.insert("http_service".into(), service);
    doc.insert(
        "metrics".into(),
        table([("port", int(spec.port)), ("path", s("/metrics"))]),
    );
    let guest = guest(spec);
    let vm = table([
        ("cpu_kind", s("shared")),
        ("cpus", int(guest.cpus)),
        ("memory", s(format!("{}mb", guest.memory_mib))),
    ]);
    doc.insert("vm".into(), Value::Array(vec![vm]));
    doc
}

fn machine(spec: &Spec) -> serde_json::Value {
    let env: serde_json::Map<String, serde_json::Value> = spec
        .env
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    let check = |path: &str| {
        json!({
            "type": "http", "port": spec.port, "method": "GET", "path": path,
            "interval": "15s", "timeout": "2s", "grace_period": "30s",
        })
    };
    let guest = guest(spec);
    let mut body = json!({
        "name": spec.name,
        "config": {
            "image": spec.image,
            "env": env,
            "init": { "cmd": spec.command },
            "guest": { "cpu_kind": "shared", "cpus": guest.cpus, "memory_mb": guest.memory_mib },
            "services": [{
                "protocol": "tcp",
                "internal_port": spec.port,
                "autostop": auto_stop(spec),
                "autostart": true,
                "min_machines_running": spec.replicas,
                "ports": [
                    { "port": 443, "handlers": ["tls", "http"] },
                    { "port": 80, "handlers": ["http"], "force_https": true },
                ],
                "concurrency": { "type": "requests", "soft_limit": 200, "hard_limit": 250 },
                "checks": [check("/healthz")],
            }],
            "checks": { "readyz": check("/readyz") },
            "metrics": { "port": spec.port, "path": "/metrics" },
            "stop_config": { "timeout": format!("{}s", spec.stop_timeout_secs()), "signal": "SIGTERM" },
            "restart": { "policy": "on-failure" },
        },
    });
    if let Some(region) = &spec.region {
        body["region"] = json!(region);
    }
    body
}

#[cfg(test)]
mod guest_tests {
    use super::*;

    fn sized(cpus: &str, memory: &str) -> Guest {
        let argv: Vec<String> = [
            "deploy", "fly", "--cpus", cpus, "--memory", memory, "--", "x",
        ]
        .map(String::from)
        .to_vec();
        let cli = <super::super::DeployCli as clap::Parser>::try_parse_from(&argv).unwrap();
        guest(&Spec::from_cli(cli, argv).unwrap())
    }

    #[test]
    fn guest_is_a_size_fly_offers() {
        let g = |cpus, memory_mib| Guest { cpus, memory_mib };
        assert_eq!(sized("0.25", "512"), g(1, 512));
        assert_eq!(sized("2.5", "2048"), g(4, 2048), "3 CPUs is no Fly size");
        assert_eq!(sized("1", "300"), g(1, 512), "memory rounds up to 256 MiB");
        assert_eq!(sized("4", "512"), g(4, 1024), "at least 256 MiB per CPU");
        assert_eq!(
            sized("1", "3000"),
            g(2, 3072),
            "at most 2 GiB per shared CPU"
        );
        assert_eq!(sized("8", "512"), g(8, 2048), "the largest shared size");
    }
}
