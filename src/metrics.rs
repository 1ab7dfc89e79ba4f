//! Prometheus metrics of the bridge (DESIGN.md section 5), exposed on `/metrics` in the
//! Prometheus text format through `prometheus-client`.
//!
//! Owns: one [`Registry`] per bridge instance (no global registry) and the metric handles the
//! other modules update. Invariant: label values come from closed sets, never from sessions,
//! tokens or message contents.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Why a line from the child's stdout was not forwarded.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SkipLabels {
    /// `not_json`, `not_jsonrpc`, `too_long` or `empty`.
    pub reason: &'static str,
}

/// Metric handles shared by the router, the sessions and the HTTP layer.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Lines from the child's stdout that were skipped, by reason.
    pub child_lines_skipped: Family<SkipLabels, Counter>,
    /// Messages received from the child and routed.
    pub child_messages: Counter,
    /// 1 while the child is running and initialized, else 0.
    pub child_up: Gauge,
    /// Sessions currently open.
    pub sessions_active: Gauge,
    /// GET streams closed because their outbox was full.
    pub slow_consumers: Counter,
    /// Requests forwarded to the child that are waiting for a response.
    pub requests_in_flight: Gauge,
    /// Times the shared child was restarted.
    pub child_restarts: Counter,
}

impl Metrics {
    /// Builds the handles and a registry holding them, all names prefixed `mcp_bridge_`.
    pub fn new() -> (std::sync::Arc<Metrics>, Registry) {
        let m = Metrics::default();
        let mut r = Registry::with_prefix("mcp_bridge");
        r.register(
            "child_lines_skipped",
            "Lines from the child's stdout that were not forwarded, by reason",
            m.child_lines_skipped.clone(),
        );
        r.register(
            "child_messages",
            "JSON-RPC messages received from the child",
            m.child_messages.clone(),
        );
        r.register(
            "child_up",
            "1 while the child is running and initialized",
            m.child_up.clone(),
        );
        r.register(
            "sessions_active",
            "Open sessions",
            m.sessions_active.clone(),
        );
        r.register(
            "slow_consumers_disconnected",
            "Session streams closed because the client did not keep up",
            m.slow_consumers.clone(),
        );
        r.register(
            "requests_in_flight",
            "Requests forwarded to the child and waiting for its response",
            m.requests_in_flight.clone(),
        );
        r.register(
            "child_restarts",
            "Times the child was restarted after it exited",
            m.child_restarts.clone(),
        );
        (std::sync::Arc::new(m), r)
    }

    /// Counts one skipped child stdout line.
    pub fn skipped(&self, reason: &'static str) {
        self.child_lines_skipped
            .get_or_create(&SkipLabels { reason })
            .inc();
    }
}

/// Renders `registry` in the Prometheus text exposition format (OpenMetrics 1.0 text, which
/// Prometheus accepts with content type `application/openmetrics-text; version=1.0.0`).
pub fn render(registry: &Registry) -> String {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, registry)
        .expect("writing to a String cannot fail");
    out
}
