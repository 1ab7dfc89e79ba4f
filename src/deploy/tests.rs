//! Golden-file tests of the renderers and the flag validation. The golden files live in
//! `tests/deploy/golden/` (and `docker/compose.yaml`, the Compose example, is the default
//! Compose rendering); CI also feeds them to the targets' validators (`scripts/deploy-check`).
//! `UPDATE_GOLDEN=1 cargo test --lib deploy` rewrites them after an intended change.

use super::*;
use std::path::PathBuf;

fn args(line: &str) -> Vec<String> {
    line.split(' ').map(str::to_string).collect()
}

fn spec(line: &str) -> Result<Spec, DeployError> {
    let argv = args(line);
    let cli = DeployCli::try_parse_from(&argv).map_err(|e| DeployError::Usage(e.to_string()))?;
    Spec::from_cli(cli, argv)
}

/// The golden cases: directory (under tests/deploy/golden) and `mcp-bridge` arguments.
pub const CASES: [(&str, &str); 8] = [
    ("k8s-default", "deploy k8s -- npx -y @modelcontextprotocol/server-everything"),
    ("k8s-full", "deploy k8s --name everything --image ghcr.io/example/mcp-bridge:node --port 9000 --replicas 3 --max-replicas 6 --env DEBUG=on --env MCP_BRIDGE_LOG_FORMAT=text --secret-env MCP_BRIDGE_AUTH_TOKEN=mcp-auth:token --secret-env API_KEY=upstream:api.key --domain mcp.example.com --egress 10.0.0.0/8 --egress 192.168.0.0/16 --shutdown-grace 20s --memory 1024 --cpus 0.5 -- uvx mcp-server-time --local-timezone=UTC"),
    ("k8s-stateless", "deploy k8s --isolation stateless --replicas 2 --egress none -- npx -y @modelcontextprotocol/server-everything"),
    ("k8s-per-session", "deploy k8s --isolation session --shutdown-grace 2500ms -- npx -y @modelcontextprotocol/server-everything"),
    ("fly-default", "deploy fly -- npx -y @modelcontextprotocol/server-everything"),
    ("fly-full", "deploy fly --name everything --image registry.fly.io/everything:v1 --region iad --isolation stateless --replicas 2 --cpus 2.5 --memory 2048 --env GREETING=it's\"$HOME\" --secret-env MCP_BRIDGE_AUTH_TOKEN=mcp-auth:token -- uvx mcp-server-time --local-timezone=UTC"),
    ("compose-default", "deploy compose -- npx -y @modelcontextprotocol/server-everything"),
    ("compose-full", "deploy compose --name time --image mcp-bridge:python --port 9000 --isolation session --env DEBUG=on --env PRICE=$5 --secret-env MCP_BRIDGE_AUTH_TOKEN=mcp-auth:token --shutdown-grace 30s -- uvx mcp-server-time --local-timezone=$TZ"),
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Where a case's file is kept: the default Compose rendering is `docker/compose.yaml`.
fn golden_path(case: &str, file: &str) -> PathBuf {
    match case {
        "compose-default" => root().join("docker").join(file),
        _ => root().join("tests/deploy/golden").join(case).join(file),
    }
}

#[test]
fn renderings_match_the_golden_files() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut stale = Vec::new();
    for (case, line) in CASES {
        let spec = spec(line).unwrap_or_else(|e| panic!("{case}: {e}"));
        for artifact in render(&spec) {
            let path = golden_path(case, artifact.path);
            if update {
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, &artifact.contents).unwrap();
                continue;
            }
            let want = std::fs::read_to_string(&path).unwrap_or_default();
            if want != artifact.contents {
                stale.push(format!("{}:\n{}", path.display(), artifact.contents));
            }
        }
    }
    assert!(
        stale.is_empty(),
        "renderings differ from the golden files (UPDATE_GOLDEN=1 rewrites them):\n{}",
        stale.join("\n")
    );
}

#[test]
fn every_yaml_rendering_parses_back_and_names_its_command() {
    for (case, line) in CASES {
        let spec = spec(line).unwrap();
        for artifact in render(&spec) {
            assert!(
                artifact.contents.ends_with('\n'),
                "{case}/{}",
                artifact.path
            );
            if artifact.path.ends_with(".yaml") {
                let doc: yaml::Value = serde_yaml_ng::from_str(&artifact.contents)
                    .unwrap_or_else(|e| panic!("{case}/{}: {e}", artifact.path));
                assert!(doc.is_mapping(), "{case}/{}", artifact.path);
                let header = artifact.contents.lines().next().unwrap();
                assert!(header.contains(&format!("mcp-bridge {}", args(line)[..2].join(" "))));
            }
        }
    }
}

#[test]
fn the_child_command_and_secrets_reach_each_target_intact() {
    let k8s = spec(CASES[1].1).unwrap();
    let deployment: yaml::Value = serde_yaml_ng::from_str(&render(&k8s)[0].contents).unwrap();
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let container_args: Vec<&str> = container["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(
        container_args,
        ["uvx", "mcp-server-time", "--local-timezone=UTC"]
    );
    let env = container["env"].as_sequence().unwrap();
    let find = |name: &str| {
        env.iter()
            .find(|e| e["name"].as_str() == Some(name))
            .unwrap()
    };
    assert_eq!(find("DEBUG")["value"].as_str(), Some("on"));
    assert_eq!(
        find("MCP_BRIDGE_LOG_FORMAT")["value"].as_str(),
        Some("text")
    );
    assert_eq!(find("MCP_BRIDGE_PORT")["value"].as_str(), Some("9000"));
    let key = &find("API_KEY")["valueFrom"]["secretKeyRef"];
    assert_eq!(
        (key["name"].as_str(), key["key"].as_str()),
        (Some("upstream"), Some("api.key"))
    );
    assert_eq!(
        container["readinessProbe"]["httpGet"]["port"].as_u64(),
        Some(9000),
        "probes use the numeric port"
    );
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["terminationGracePeriodSeconds"].as_u64(), Some(25));

    let compose = spec(CASES[7].1).unwrap();
    let file: yaml::Value = serde_yaml_ng::from_str(&render(&compose)[0].contents).unwrap();
    let service = &file["services"]["time"];
    assert_eq!(service["environment"]["PRICE"].as_str(), Some("$$5"));
    assert_eq!(
        service["command"][2].as_str(),
        Some("--local-timezone=$$TZ")
    );
    assert!(service["environment"]["MCP_BRIDGE_AUTH_TOKEN"]
        .as_str()
        .unwrap()
        .starts_with("${MCP_BRIDGE_AUTH_TOKEN:?"));

    let fly = spec(CASES[5].1).unwrap();
    let machine: serde_json::Value = serde_json::from_str(&render(&fly)[1].contents).unwrap();
    assert_eq!(machine["config"]["init"]["cmd"][2], "--local-timezone=UTC");
    assert_eq!(machine["config"]["env"]["GREETING"], "it's\"$HOME\"");
    assert!(machine["config"]["env"]
        .get("MCP_BRIDGE_AUTH_TOKEN")
        .is_none());
    let toml: toml::Table = render(&fly)[0].contents.parse().unwrap();
    assert_eq!(toml["env"]["GREETING"].as_str(), Some("it's\"$HOME\""));
    assert_eq!(toml["kill_timeout"].as_integer(), Some(15));
}

#[test]
fn bad_flags_are_refused_naming_the_flag() {
    let refused = [
        ("deploy k8s --name My_App -- x", "--name"),
        ("deploy k8s --name=x- -- x", "--name"),
        ("deploy fly --replicas 2 -- x", "--isolation stateless"),
        ("deploy compose --replicas 2 -- x", "--isolation stateless"),
        ("deploy fly --shutdown-grace 296s -- x", "at most 300 s"),
        ("deploy fly --cpus 9 -- x", "8 CPUs and 16384 MiB"),
        ("deploy fly --memory 20000 -- x", "8 CPUs and 16384 MiB"),
        (
            "deploy k8s --env MCP_BRIDGE_SESSION_SECRET=x -- x",
            "--secret-env",
        ),
        ("deploy k8s --replicas 0 -- x", "--replicas"),
        (
            "deploy k8s --replicas 4 --max-replicas 2 -- x",
            "--max-replicas",
        ),
        ("deploy k8s --env NOEQUALS -- x", "K=V"),
        (
            "deploy k8s --env 1X=y -- x",
            "not an environment variable name",
        ),
        ("deploy k8s --env MCP_BRIDGE_PORT=1 -- x", "use --port"),
        ("deploy k8s --env A=1 --env A=2 -- x", "A is given twice"),
        (
            "deploy k8s --env A=1 --secret-env A=s:k -- x",
            "A is given twice",
        ),
        ("deploy k8s --secret-env A=s -- x", "VAR=SECRET:KEY"),
        ("deploy k8s --secret-env A=Bad_Secret:k -- x", "SECRET"),
        ("deploy k8s --secret-env A=s:k/y -- x", "KEY must be"),
        ("deploy k8s --egress 10.0.0.0/33 -- x", "--egress"),
        (
            "deploy k8s --egress all --egress 10.0.0.0/8 -- x",
            "--egress",
        ),
        ("deploy k8s --domain Example.COM -- x", "--domain"),
        ("deploy k8s --cpus 0 -- x", "--cpus"),
        ("deploy k8s --port 0 -- x", "--port"),
        ("deploy k8s --image a\u{20}b -- x", "--image"),
        ("deploy fly --region IAD -- x", "--region"),
        ("deploy k8s", "CMD"),
    ];
    let spec = |argv: Vec<String>| {
        DeployCli::try_parse_from(&argv)
            .map_err(|e| DeployError::Usage(e.to_string()))
            .and_then(|cli| Spec::from_cli(cli, argv.clone()))
    };
    assert!(spec(args("deploy fly --shutdown-grace 295s -- x")).is_ok());
    assert!(spec(args("deploy fly --cpus 8 --memory 16384 -- x")).is_ok());
    for (line, needle) in refused {
        let argv: Vec<String> = match line.contains("a\u{20}b") {
            true => vec!["deploy", "k8s", "--image", "a b", "--", "x"]
                .into_iter()
                .map(String::from)
                .collect(),
            false => args(line),
        };
        match spec(argv) {
            Err(DeployError::Usage(m)) => assert!(m.contains(needle), "{line}: {m}"),
            other => panic!("{line}: expected a usage error, got {other:?}"),
        }
    }
}

#[test]
fn output_directory_files_are_not_overwritten_without_force() {
    let dir = std::env::temp_dir().join(format!("mcp-bridge-deploy-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let artifacts = render(&spec(CASES[4].1).unwrap());
    let written = write_all(&dir, &artifacts, false).unwrap();
    assert_eq!(written.len(), 2);
    std::fs::write(&written[0], "edited").unwrap();
    let err = write_all(&dir, &artifacts, false).unwrap_err();
    assert!(
        matches!(err, DeployError::Exists(ref p) if p.ends_with("fly.toml")),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&written[0]).unwrap(), "edited");
    write_all(&dir, &artifacts, true).unwrap();
    assert_eq!(
        std::fs::read_to_string(&written[0]).unwrap(),
        artifacts[0].contents
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn stdout_is_one_manifest_stream_for_k8s_and_headed_files_for_fly() {
    let k8s = spec(CASES[0].1).unwrap();
    let text = to_stdout(Target::K8s, &render(&k8s));
    let kinds: Vec<String> = serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| {
            let v = <yaml::Value as serde::Deserialize>::deserialize(d).unwrap();
            v["kind"].as_str().unwrap().to_string()
        })
        .collect();
    let expected = [
        "Deployment",
        "Service",
        "Ingress",
        "NetworkPolicy",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
    ];
    assert_eq!(kinds, expected);
    let fly = to_stdout(Target::Fly, &render(&spec(CASES[4].1).unwrap()));
    assert!(fly.starts_with("==> fly.toml <==\n") && fly.contains("\n==> machine.json <==\n"));
}

#[test]
fn shell_quoting_round_trips_through_a_posix_shell() {
    let words = ["plain", "it's", "a b", "$HOME", "", "--x=y", "@scope/pkg"];
    let line = command_line(&words.map(String::from));
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("printf '%s\\n' {line}"))
        .output()
        .unwrap();
    let got: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().lines().collect();
    assert_eq!(got, words);
}
