//! Kubernetes renderer: a kustomization of Deployment, Service, Ingress (ingress-nginx, session
//! affinity by a hash of `Mcp-Session-Id`), NetworkPolicy, HorizontalPodAutoscaler and
//! PodDisruptionBudget. Checked in CI by `kubectl kustomize` and `kubernetes-validate --strict`.
//!
//! Invariants: probes use the numeric container port; the pod runs as the image's non-root
//! uid with a read-only root filesystem, no capabilities and the RuntimeDefault seccomp
//! profile; `terminationGracePeriodSeconds` exceeds the bridge's shutdown grace.

use super::yaml::{self, map, Value};
use super::{Artifact, Egress, Spec, CACHE_DIR, IMAGE_UID};

/// Name of the kustomization file, which lists the others.
pub const KUSTOMIZATION: &str = "kustomization.yaml";
/// The ingress-nginx annotation that picks the upstream pod by a consistent hash of a value.
pub const HASH_BY_ANNOTATION: &str = "nginx.ingress.kubernetes.io/upstream-hash-by";
/// The hashed value: the `Mcp-Session-Id` request header, as an nginx variable.
pub const HASH_BY_SESSION: &str = "$http_mcp_session_id";

/// Renders the manifests and the kustomization that ties them together.
pub fn render(spec: &Spec) -> Vec<Artifact> {
    let docs = [
        ("deployment.yaml", deployment(spec)),
        ("service.yaml", service(spec)),
        ("ingress.yaml", ingress(spec)),
        ("networkpolicy.yaml", network_policy(spec)),
        ("hpa.yaml", autoscaler(spec)),
        ("pdb.yaml", disruption_budget(spec)),
    ];
    let resources: Vec<Value> = docs.iter().map(|(p, _)| Value::from(*p)).collect();
    let kustomization = map! {
        "apiVersion" => "kustomize.config.k8s.io/v1beta1",
        "kind" => "Kustomization",
        "resources" => resources,
    };
    docs.into_iter()
        .chain([(KUSTOMIZATION, kustomization)])
        .map(|(path, doc)| {
            let needs = match path {
                "deployment.yaml" => secrets_needed(spec),
                _ => String::new(),
            };
            Artifact {
                path,
                contents: format!("{}{needs}{}", spec.header(), yaml::to_string(&doc)),
            }
        })
        .collect()
}

/// Comment lines telling how to create the Secrets the Deployment reads (none: empty). The
/// session secret gets a random value; the others the user's.
fn secrets_needed(spec: &Spec) -> String {
    let mut out = String::new();
    for s in &spec.secrets {
        let value = match s.var == crate::session::seal::SECRET_ENV {
            true => "\"$(openssl rand -hex 32)\"".to_string(),
            false => format!("\"${}\"", s.var),
        };
        out.push_str(&format!(
            "# Needs: kubectl create secret generic {} --from-literal={}={value}\n",
            s.secret, s.key
        ));
    }
    out
}

fn labels(spec: &Spec) -> Value {
    map! {
        "app.kubernetes.io/name" => spec.name.as_str(),
        "app.kubernetes.io/component" => "mcp-server",
        "app.kubernetes.io/managed-by" => "mcp-bridge",
    }
}

fn selector(spec: &Spec) -> Value {
    map! { "app.kubernetes.io/name" => spec.name.as_str() }
}

fn metadata(spec: &Spec) -> Value {
    map! { "name" => spec.name.as_str(), "labels" => labels(spec) }
}

fn deployment(spec: &Spec) -> Value {
    let template = map! {
        "metadata" => map! {
            "labels" => labels(spec),
            "annotations" => map! {
                "prometheus.io/scrape" => "true",
                "prometheus.io/port" => spec.port.to_string(),
                "prometheus.io/path" => "/metrics",
            },
        },
        "spec" => map! {
            "automountServiceAccountToken" => false,
            "terminationGracePeriodSeconds" => spec.stop_timeout_secs(),
            "securityContext" => map! {
                "runAsNonRoot" => true,
                "runAsUser" => IMAGE_UID,
                "runAsGroup" => IMAGE_UID,
                "fsGroup" => IMAGE_UID,
                "seccompProfile" => map! { "type" => "RuntimeDefault" },
            },
            "containers" => vec![container(spec)],
            "volumes" => vec![map! {
                "name" => "cache",
                "emptyDir" => map! { "sizeLimit" => "1Gi" },
            }],
        },
    };
    map! {
        "apiVersion" => "apps/v1",
        "kind" => "Deployment",
        "metadata" => metadata(spec),
        "spec" => map! {
            "replicas" => spec.replicas,
            "selector" => map! { "matchLabels" => selector(spec) },
            "template" => template,
        },
    }
}

fn container(spec: &Spec) -> Value {
    let probe = |path: &str, period: u32, failures: u32| {
        map! {
            "httpGet" => map! { "path" => path, "port" => spec.port },
            "periodSeconds" => period,
            "timeoutSeconds" => 2,
            "failureThreshold" => failures,
        }
    };
    map! {
        "name" => "mcp-bridge",
        "image" => spec.image.as_str(),
        "imagePullPolicy" => "IfNotPresent",
        "args" => spec.command.clone(),
        "ports" => vec![map! { "name" => "http", "containerPort" => spec.port, "protocol" => "TCP" }],
        "env" => env(spec),
        // npx or uvx may download the server first: up to 2 minutes to come up.
        "startupProbe" => probe("/healthz", 2, 60),
        "livenessProbe" => probe("/healthz", 10, 3),
        "readinessProbe" => probe("/readyz", 5, 2),
        "resources" => map! {
            "requests" => map! {
                "cpu" => cpu(spec.cpu_millis / 10),
                "memory" => format!("{}Mi", (spec.memory_mib / 4).max(16)),
            },
            "limits" => map! {
                "cpu" => cpu(spec.cpu_millis),
                "memory" => format!("{}Mi", spec.memory_mib),
            },
        },
        "securityContext" => map! {
            "allowPrivilegeEscalation" => false,
            "readOnlyRootFilesystem" => true,
            "runAsNonRoot" => true,
            "capabilities" => map! { "drop" => vec!["ALL"] },
        },
        "volumeMounts" => vec![map! { "name" => "cache", "mountPath" => CACHE_DIR }],
    }
}

/// A CPU quantity: whole cores as `"2"`, else millicores as `"250m"` (at least 10m).
fn cpu(millis: u32) -> String {
    match millis.max(10) {
        m if m % 1000 == 0 => (m / 1000).to_string(),
        m => format!("{m}m"),
    }
}

fn env(spec: &Spec) -> Vec<Value> {
    let plain = spec
        .env
        .iter()
        .map(|(k, v)| map! { "name" => k.as_str(), "value" => v.as_str() });
    let secret = spec.secrets.iter().map(|s| {
        map! {
            "name" => s.var.as_str(),
            "valueFrom" => map! {
                "secretKeyRef" => map! { "name" => s.secret.as_str(), "key" => s.key.as_str() },
            },
        }
    });
    plain.chain(secret).collect()
}

fn service(spec: &Spec) -> Value {
    let mut body = map! {
        "type" => "ClusterIP",
        "selector" => selector(spec),
        "ports" => vec![map! {
            "name" => "http",
            "port" => 80,
            "targetPort" => "http",
            "protocol" => "TCP",
        }],
    };
    if spec.has_sessions() {
        // In-cluster clients bypass the Ingress: keep each on one pod.
        yaml::insert(&mut body, "sessionAffinity", "ClientIP");
    }
    map! {
        "apiVersion" => "v1",
        "kind" => "Service",
        "metadata" => metadata(spec),
        "spec" => body,
    }
}

fn ingress(spec: &Spec) -> Value {
    // Streams stay open for as long as a session lives; replies are sent as they come.
    let mut annotations = map! {
        "nginx.ingress.kubernetes.io/proxy-read-timeout" => "3600",
        "nginx.ingress.kubernetes.io/proxy-send-timeout" => "3600",
        "nginx.ingress.kubernetes.io/proxy-buffering" => "off",
        "nginx.ingress.kubernetes.io/proxy-body-size" => "4m",
    };
    if spec.has_sessions() {
        yaml::insert(&mut annotations, HASH_BY_ANNOTATION, HASH_BY_SESSION);
    }
    let backend = map! {
        "service" => map! { "name" => spec.name.as_str(), "port" => map! { "name" => "http" } },
    };
    let mut rule = map! {};
    let mut body = map! { "ingressClassName" => spec.ingress_class.as_str() };
    if let Some(domain) = &spec.domain {
        yaml::insert(&mut rule, "host", domain.as_str());
        let tls =
            map! { "hosts" => vec![domain.as_str()], "secretName" => format!("{}-tls", spec.name) };
        yaml::insert(&mut body, "tls", vec![tls]);
    }
    let paths = vec![map! { "path" => "/", "pathType" => "Prefix", "backend" => backend }];
    yaml::insert(&mut rule, "http", map! { "paths" => paths });
    yaml::insert(&mut body, "rules", vec![rule]);
    let mut meta = metadata(spec);
    yaml::insert(&mut meta, "annotations", annotations);
    map! {
        "apiVersion" => "networking.k8s.io/v1",
        "kind" => "Ingress",
        "metadata" => meta,
        "spec" => body,
    }
}

fn from_namespace(namespace: &str, port: u16) -> Value {
    map! {
        "from" => vec![map! {
            "namespaceSelector" => map! {
                "matchLabels" => map! { "kubernetes.io/metadata.name" => namespace },
            },
        }],
        "ports" => vec![map! { "protocol" => "TCP", "port" => port }],
    }
}

fn network_policy(spec: &Spec) -> Value {
    let dns = map! {
        "to" => vec![map! {
            "namespaceSelector" => map! {
                "matchLabels" => map! { "kubernetes.io/metadata.name" => "kube-system" },
            },
        }],
        "ports" => vec![
            map! { "protocol" => "UDP", "port" => 53 },
            map! { "protocol" => "TCP", "port" => 53 },
        ],
    };
    let egress = match &spec.egress {
        Egress::All => vec![map! {}],
        Egress::None => vec![dns],
        Egress::Cidrs(cidrs) => {
            let to: Vec<Value> = cidrs
                .iter()
                .map(|c| map! { "ipBlock" => map! { "cidr" => c.as_str() } })
                .collect();
            vec![dns, map! { "to" => to }]
        }
    };
    map! {
        "apiVersion" => "networking.k8s.io/v1",
        "kind" => "NetworkPolicy",
        "metadata" => metadata(spec),
        "spec" => map! {
            "podSelector" => map! { "matchLabels" => selector(spec) },
            "policyTypes" => vec!["Ingress", "Egress"],
            "ingress" => vec![
                from_namespace(&spec.ingress_namespace, spec.port),
                from_namespace(&spec.monitoring_namespace, spec.port),
            ],
            "egress" => egress,
        },
    }
}

fn autoscaler(spec: &Spec) -> Value {
    map! {
        "apiVersion" => "autoscaling/v2",
        "kind" => "HorizontalPodAutoscaler",
        "metadata" => metadata(spec),
        "spec" => map! {
            "scaleTargetRef" => map! {
                "apiVersion" => "apps/v1",
                "kind" => "Deployment",
                "name" => spec.name.as_str(),
            },
            "minReplicas" => spec.replicas,
            "maxReplicas" => spec.max_replicas,
            "metrics" => vec![map! {
                "type" => "Resource",
                "resource" => map! {
                    "name" => "cpu",
                    "target" => map! { "type" => "Utilization", "averageUtilization" => 70 },
                },
            }],
            // Removing a pod ends its sessions: scale down slowly.
            "behavior" => map! {
                "scaleDown" => map! { "stabilizationWindowSeconds" => 600 },
            },
        },
    }
}

fn disruption_budget(spec: &Spec) -> Value {
    map! {
        "apiVersion" => "policy/v1",
        "kind" => "PodDisruptionBudget",
        "metadata" => metadata(spec),
        "spec" => map! {
            "maxUnavailable" => 1,
            "selector" => map! { "matchLabels" => selector(spec) },
        },
    }
}
