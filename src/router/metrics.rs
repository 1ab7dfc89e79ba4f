//! Metrics of the requests and messages that pass through the routers.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use std::time::Duration;

/// The request methods counted under their own name (MCP 2025-11-25 client-to-server requests);
/// any other method is counted as `other`, so clients cannot grow the label set.
pub const METHODS: &[&str] = &[
    "initialize",
    "ping",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "logging/setLevel",
    "tasks/get",
    "tasks/list",
    "tasks/result",
    "tasks/cancel",
];

/// Upper bounds of the request duration buckets, in seconds.
pub const DURATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 300.0,
];

/// The label of `method`: itself when in [`METHODS`], else `other`.
pub fn method_label(method: &str) -> &'static str {
    METHODS
        .iter()
        .find(|m| **m == method)
        .copied()
        .unwrap_or("other")
}

/// How a client request ended.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Outcome {
    /// Answered with a result.
    Ok,
    /// Answered with a JSON-RPC error (from the child or the bridge).
    Error,
    /// No answer within `--request-timeout`; the child got `notifications/cancelled`.
    Timeout,
    /// The client went away (or cancelled) before the answer.
    Cancelled,
    /// Refused because the child's stdin queue was full.
    Overloaded,
    /// No child to answer (exited, restarting, shutting down).
    Unavailable,
}

impl Outcome {
    /// The label value: `ok`, `error`, `timeout`, `cancelled`, `overloaded` or `unavailable`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Timeout => "timeout",
            Outcome::Cancelled => "cancelled",
            Outcome::Overloaded => "overloaded",
            Outcome::Unavailable => "unavailable",
        }
    }

    /// The outcome of a reply: `Ok` or `Error` after looking at the response, else by the
    /// routing error.
    pub fn of(reply: &super::Reply) -> Outcome {
        match reply {
            Ok(body) => match is_error_response(body) {
                true => Outcome::Error,
                false => Outcome::Ok,
            },
            Err(super::RouteError::Timeout(_)) => Outcome::Timeout,
            Err(super::RouteError::Overloaded) => Outcome::Overloaded,
            Err(super::RouteError::DuplicateId(_)) => Outcome::Error,
            Err(super::RouteError::Cancelled(_) | super::RouteError::CancelledByClient) => {
                Outcome::Cancelled
            }
            Err(super::RouteError::Unavailable(_)) => Outcome::Unavailable,
        }
    }
}

/// True when `body` is a JSON-RPC error response (it has a top-level `error` member).
fn is_error_response(body: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(default)]
        error: Option<serde::de::IgnoredAny>,
    }
    serde_json::from_slice::<Probe>(body).is_ok_and(|p| p.error.is_some())
}

/// Where a message went, for `mcp_bridge_messages_total` and `mcp_bridge_bytes_total`.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Direction {
    /// A JSON-RPC message a client sent to the bridge (POST body, SSE message POST, WebSocket
    /// frame).
    FromClient,
    /// A line written to a child's stdin.
    ToChild,
    /// A JSON-RPC message read from a child's stdout.
    FromChild,
}

impl Direction {
    /// The label value: `from_client`, `to_child` or `from_child`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::FromClient => "from_client",
            Direction::ToChild => "to_child",
            Direction::FromChild => "from_child",
        }
    }
}

impl EncodeLabelValue for Outcome {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.as_str(), encoder)
    }
}

impl EncodeLabelValue for Direction {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.as_str(), encoder)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    outcome: Outcome,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabels {
    direction: Direction,
}

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS.iter().copied())
}

/// Request and message metrics, summed over every router (shared and per-session).
#[derive(Debug)]
pub struct RouterMetrics {
    requests: Family<RequestLabels, Counter>,
    duration: Family<MethodLabels, Histogram, fn() -> Histogram>,
    /// Requests forwarded to a child and waiting for its response.
    pub in_flight: Gauge,
    messages: Family<DirectionLabels, Counter>,
    bytes: Family<DirectionLabels, Counter>,
}

impl Default for RouterMetrics {
    fn default() -> Self {
        RouterMetrics {
            requests: Family::default(),
            duration: Family::new_with_constructor(duration_histogram),
            in_flight: Gauge::default(),
            messages: Family::default(),
            bytes: Family::default(),
        }
    }
}

impl RouterMetrics {
    /// Creates the handles and registers them in `r` (names below `mcp_bridge_`).
    pub fn register(r: &mut Registry) -> RouterMetrics {
        let m = RouterMetrics::default();
        for direction in [
            Direction::FromClient,
            Direction::ToChild,
            Direction::FromChild,
        ] {
            let _ = m.messages.get_or_create(&DirectionLabels { direction });
            let _ = m.bytes.get_or_create(&DirectionLabels { direction });
        }
        r.register(
            "requests",
            "Client requests by method (MCP methods, else other) and outcome",
            m.requests.clone(),
        );
        r.register_with_unit(
            "request_duration",
            "Time from a client request reaching the router to its answer, by method",
            Unit::Seconds,
            m.duration.clone(),
        );
        r.register(
            "requests_in_flight",
            "Requests forwarded to a child and waiting for its response",
            m.in_flight.clone(),
        );
        r.register(
            "messages",
            "JSON-RPC messages by direction: from_client, to_child, from_child",
            m.messages.clone(),
        );
        r.register_with_unit(
            "message",
            "Bytes of JSON-RPC messages by direction (including the newline on the child's stdio)",
            Unit::Bytes,
            m.bytes.clone(),
        );
        m
    }

    /// Records one finished client request of `method` (any string: bounded by
    /// [`method_label`]) with its `outcome` and how long it took.
    pub fn request_done(&self, method: &str, outcome: Outcome, elapsed: Duration) {
        let method = method_label(method);
        self.requests
            .get_or_create(&RequestLabels { method, outcome })
            .inc();
        self.duration
            .get_or_create(&MethodLabels { method })
            .observe(elapsed.as_secs_f64());
    }

    /// Counts one message of `bytes` bytes going `direction`.
    pub fn message(&self, direction: Direction, bytes: usize) {
        let labels = DirectionLabels { direction };
        self.messages.get_or_create(&labels).inc();
        self.bytes.get_or_create(&labels).inc_by(bytes as u64);
    }
}
