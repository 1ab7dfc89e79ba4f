//! Docker Compose renderer: one `compose.yaml` with a service that runs the image read-only
//! (tmpfs for caches), without capabilities, with a healthcheck by `mcp-bridge probe`, a
//! restart policy, bounded logs and a stop timeout above the bridge's shutdown grace. Checked
//! in CI by `check-jsonschema --builtin-schema vendor.compose-spec` and `docker-compose config`.
//!
//! Compose interpolates `$` in values, so literal dollars are written as `$$`; secret variables
//! are interpolated from the shell or `.env` at `up` time and refused when unset.

use super::yaml::{self, map, Value};
use super::{Artifact, Spec, CACHE_DIR};

/// The file name.
pub const FILE: &str = "compose.yaml";

/// Renders `compose.yaml`.
pub fn render(spec: &Spec) -> Vec<Artifact> {
    let doc = map! { "services" => map! { spec.name.as_str() => service(spec) } };
    vec![Artifact {
        path: FILE,
        contents: format!(
            "{}# Published on 127.0.0.1 only: put a TLS-terminating proxy in front to serve others.\n{}",
            spec.header(),
            yaml::to_string(&doc)
        ),
    }]
}

/// `text` with every `$` doubled, so Compose passes it through literally.
fn literal(text: &str) -> String {
    text.replace('$', "$$")
}

fn service(spec: &Spec) -> Value {
    let mut environment = serde_yaml_ng::Mapping::new();
    for (k, v) in &spec.env {
        environment.insert(k.as_str().into(), literal(v).into());
    }
    for s in &spec.secrets {
        let value = format!(
            "${{{var}:?set {var} (secret {secret}, key {key}) in the environment or .env}}",
            var = s.var,
            secret = s.secret,
            key = s.key
        );
        environment.insert(s.var.as_str().into(), value.into());
    }
    let command: Vec<String> = spec.command.iter().map(|a| literal(a)).collect();
    map! {
        "image" => spec.image.as_str(),
        "command" => command,
        "ports" => vec![format!("127.0.0.1:{0}:{0}", spec.port)],
        "environment" => Value::Mapping(environment),
        "read_only" => true,
        // exec: Docker mounts a tmpfs noexec unless told otherwise, and npx and uvx run the
        // servers they download from their caches under /tmp.
        "tmpfs" => vec![format!("{CACHE_DIR}:exec,mode=1777,size=1g")],
        "cap_drop" => vec!["ALL"],
        "security_opt" => vec!["no-new-privileges:true"],
        "healthcheck" => map! {
            "test" => vec!["CMD", "mcp-bridge", "probe"],
            "interval" => "15s",
            "timeout" => "5s",
            "retries" => 3,
            // npx or uvx may download the server first.
            "start_period" => "120s",
        },
        "restart" => "unless-stopped",
        "stop_signal" => "SIGTERM",
        "stop_grace_period" => format!("{}s", spec.stop_timeout_secs()),
        "logging" => map! {
            "driver" => "json-file",
            "options" => map! { "max-size" => "10m", "max-file" => "3" },
        },
        "deploy" => map! {
            "resources" => map! {
                "limits" => map! {
                    "cpus" => format!("{}", f64::from(spec.cpu_millis) / 1000.0),
                    "memory" => format!("{}M", spec.memory_mib),
                },
            },
        },
    }
}
