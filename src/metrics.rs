//! Prometheus metrics of the bridge (DESIGN.md section 5), exposed on `/metrics` (or the
//! `--admin-listen` listener) in the OpenMetrics text format through `prometheus-client`.
//!
//! Owns: one [`Registry`] per bridge instance (no global registry), the build-info metric, and
//! the aggregate [`Metrics`] of the groups each module defines and registers itself:
//! [`crate::child::ChildMetrics`], [`crate::router::RouterMetrics`],
//! [`crate::session::SessionMetrics`] and [`crate::transport::HttpMetrics`]. Invariant: label
//! values come from closed sets, never from sessions, tokens, method names outside the
//! allow-list or message contents.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Labels of `mcp_bridge_build_info`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    /// The crate version, e.g. `0.1.0`.
    pub version: &'static str,
    /// The git commit the binary was built from (12 hex digits), or `unknown`.
    pub git_sha: &'static str,
}

/// The git commit of this build, from `build.rs` (`unknown` outside a git checkout).
pub const GIT_SHA: &str = env!("MCP_BRIDGE_GIT_SHA");

/// Every metric handle, grouped by the module that updates it.
#[derive(Debug, Default)]
pub struct Metrics {
    /// The child processes and their stdio.
    pub child: crate::child::ChildMetrics,
    /// Requests and messages through the router.
    pub router: crate::router::RouterMetrics,
    /// Sessions and their streams.
    pub sessions: crate::session::SessionMetrics,
    /// The HTTP edge: rejected requests.
    pub http: crate::transport::HttpMetrics,
}

impl Metrics {
    /// Builds the handles and a registry holding them, all names prefixed `mcp_bridge_`.
    pub fn new() -> (std::sync::Arc<Metrics>, Registry) {
        let mut r = Registry::with_prefix("mcp_bridge");
        let build: Family<BuildLabels, Gauge> = Family::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
                git_sha: GIT_SHA,
            })
            .set(1);
        r.register(
            "build_info",
            "Always 1; the labels name the version and git commit of the binary",
            build,
        );
        let m = Metrics {
            child: crate::child::ChildMetrics::register(&mut r),
            router: crate::router::RouterMetrics::register(&mut r),
            sessions: crate::session::SessionMetrics::register(&mut r),
            http: crate::transport::HttpMetrics::register(&mut r),
        };
        (std::sync::Arc::new(m), r)
    }
}

/// Renders `registry` in the OpenMetrics 1.0 text format, which Prometheus scrapes with content
/// type `application/openmetrics-text; version=1.0.0`.
pub fn render(registry: &Registry) -> String {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, registry)
        .expect("writing to a String cannot fail");
    out
}

/// Converts OpenMetrics text from [`render`] to the Prometheus text format 0.0.4, for scrapers
/// that do not ask for OpenMetrics (`promtool check metrics`, older agents): counter families
/// are named with their `_total` suffix in `# HELP`/`# TYPE`, and `# UNIT` and `# EOF` lines are
/// dropped. Samples are the same in both formats.
pub fn to_text_004(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    let mut help: Option<&str> = None;
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if line.starts_with("# HELP ") {
            // Written with its TYPE line, once the type is known.
            help = Some(line);
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let family = match kind == "counter" && !name.ends_with("_total") {
                true => format!("{name}_total"),
                false => name.to_string(),
            };
            if let Some(h) = help.take() {
                let text = h["# HELP ".len()..].split_once(' ').map_or("", |(_, t)| t);
                out.push_str(&format!("# HELP {family} {text}\n"));
            }
            out.push_str(&format!("# TYPE {family} {kind}\n"));
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_group_is_registered_and_method_labels_are_bounded() {
        let (m, registry) = Metrics::new();
        for i in 0..1000 {
            m.router.request_done(
                &format!("x/unknown-{i}"),
                crate::router::Outcome::Error,
                std::time::Duration::from_millis(1),
            );
        }
        m.router
            .request_done("tools/call", crate::router::Outcome::Ok, Default::default());
        let text = render(&registry);
        for name in [
            "mcp_bridge_build_info{",
            "mcp_bridge_child_up ",
            "mcp_bridge_requests_total{method=\"other\",outcome=\"error\"} 1000",
            "mcp_bridge_requests_total{method=\"tools/call\",outcome=\"ok\"} 1",
            "mcp_bridge_request_duration_seconds_bucket{le=",
            "mcp_bridge_rejected_requests_total",
            "mcp_bridge_sse_streams_open ",
        ] {
            assert!(text.contains(name), "{name} missing from:\n{text}");
        }
        assert!(!text.contains("unknown-"), "no free-form label values");

        let plain = to_text_004(&text);
        assert!(plain.contains(
            "# HELP mcp_bridge_requests_total Client requests by method (MCP methods, else other) and outcome.\n# TYPE mcp_bridge_requests_total counter\n"
        ), "{plain}");
        assert!(plain.contains("# TYPE mcp_bridge_request_duration_seconds histogram\n"));
        assert!(!plain.contains("# EOF") && !plain.contains("# UNIT"));
        let samples = |t: &str| t.lines().filter(|l| !l.starts_with('#')).count();
        assert_eq!(samples(&plain), samples(&text), "samples unchanged");
    }
}
