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
        .get(method_index(method))
        .copied()
        .unwrap_or("other")
}

/// The position of `method` in [`METHODS`], or `METHODS.len()` for `other`.
fn method_index(method: &str) -> usize {
    METHODS
        .iter()
        .position(|m| *m == method)
        .unwrap_or(METHODS.len())
}

/// Number of [`Outcome`] values.
const OUTCOMES: usize = 6;

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

    /// The outcome of the reply to request `id`: `Ok` or `Error` after looking at the response,
    /// else by the routing error.
    pub fn of(reply: &super::Reply, id: &crate::jsonrpc::RequestId) -> Outcome {
        match reply {
            Ok(body) => match is_error_response(body, id) {
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

/// True when `body`, the response to request `id`, is a JSON-RPC error response. The router's
/// own formats are recognised from their first bytes, so a large result is not scanned:
/// `{"jsonrpc":"2.0","id":ID,"result"|"error"…` (responses passed through, see
/// [`crate::jsonrpc::Message::to_json_with_id`]) and `{"error":…` (errors the bridge makes).
/// Anything else is parsed.
fn is_error_response(body: &[u8], id: &crate::jsonrpc::RequestId) -> bool {
    if body.starts_with(br#"{"error":"#) || body.starts_with(br#"{"jsonrpc":"2.0","error":"#) {
        return true;
    }
    // The id is written into a stack buffer: no allocation per request. An id too long for it
    // takes the slow way.
    const PREFIX: &[u8] = br#"{"jsonrpc":"2.0","id":"#;
    let mut buf = [0u8; 80];
    let mut out = std::io::Cursor::new(&mut buf[..]);
    if serde_json::to_writer(&mut out, id).is_ok() {
        let written = out.position() as usize;
        let rest = body
            .strip_prefix(PREFIX)
            .and_then(|b| b.strip_prefix(&buf[..written]))
            .and_then(|b| b.strip_prefix(b","));
        if let Some(rest) = rest {
            return rest.starts_with(br#""error""#);
        }
    }
    parsed_is_error(body)
}

/// [`is_error_response`] the slow way: a top-level `error` member.
fn parsed_is_error(body: &[u8]) -> bool {
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
    /// The (messages, bytes) counters of each [`Direction`], taken once so counting costs no
    /// family lookup.
    by_direction: [(Counter, Counter); 3],
    /// Per method (index by `method_index`): the counter of each outcome and the duration
    /// histogram, taken from the families on first use so later requests skip the lookups.
    /// A series appears only once used.
    per_method: Vec<MethodHandles>,
}

#[derive(Debug, Default)]
struct MethodHandles {
    outcomes: [std::sync::OnceLock<Counter>; OUTCOMES],
    duration: std::sync::OnceLock<Histogram>,
}

const DIRECTIONS: [Direction; 3] = [
    Direction::FromClient,
    Direction::ToChild,
    Direction::FromChild,
];

impl Default for RouterMetrics {
    fn default() -> Self {
        let messages: Family<DirectionLabels, Counter> = Family::default();
        let bytes: Family<DirectionLabels, Counter> = Family::default();
        let by_direction = DIRECTIONS.map(|direction| {
            let labels = DirectionLabels { direction };
            (
                messages.get_or_create(&labels).clone(),
                bytes.get_or_create(&labels).clone(),
            )
        });
        RouterMetrics {
            requests: Family::default(),
            duration: Family::new_with_constructor(duration_histogram),
            in_flight: Gauge::default(),
            messages,
            bytes,
            by_direction,
            per_method: (0..=METHODS.len())
                .map(|_| MethodHandles::default())
                .collect(),
        }
    }
}

impl RouterMetrics {
    /// Creates the handles and registers them in `r` (names below `mcp_bridge_`).
    pub fn register(r: &mut Registry) -> RouterMetrics {
        let m = RouterMetrics::default();
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
        let index = method_index(method);
        let method = METHODS.get(index).copied().unwrap_or("other");
        let handles = &self.per_method[index];
        handles.outcomes[outcome as usize]
            .get_or_init(|| {
                self.requests
                    .get_or_create(&RequestLabels { method, outcome })
                    .clone()
            })
            .inc();
        handles
            .duration
            .get_or_init(|| {
                self.duration
                    .get_or_create(&MethodLabels { method })
                    .clone()
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Counts one message of `bytes` bytes going `direction`.
    pub fn message(&self, direction: Direction, bytes: usize) {
        let (messages, total) = &self.by_direction[direction as usize];
        messages.inc();
        total.inc_by(bytes as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jsonrpc::{self, Message, RequestId};

    #[test]
    fn error_responses_are_told_from_results_without_parsing_them() {
        for id in [
            RequestId::Number(7),
            RequestId::String("a \"quoted\",\"error\": id".into()),
        ] {
            let error = jsonrpc::error_response(Some(&id), -32601, "no such method");
            assert!(is_error_response(&error, &id));
            let raw = serde_json::value::RawValue::from_string("{\"error\":1}".into()).unwrap();
            let result = jsonrpc::result_response(&id, &raw);
            assert!(
                !is_error_response(&result, &id),
                "a result that mentions error"
            );
            let child =
                Message::parse(br#"{"jsonrpc":"2.0","id":1,"error":{"code":1,"message":"m"}}"#)
                    .unwrap()
                    .to_json_with_id(Some(&id));
            assert!(is_error_response(&child, &id));
        }
        assert!(!is_error_response(
            b"{\"result\":{},\"jsonrpc\":\"2.0\",\"id\":1}",
            &RequestId::Number(1)
        ));
        assert!(is_error_response(
            b" {\"id\":1, \"error\":{}}",
            &RequestId::Number(1)
        ));
        // An id longer than the stack buffer takes the parsing path, with the same answers.
        let long = RequestId::String("x".repeat(200));
        let error = jsonrpc::error_response(Some(&long), -32601, "no such method");
        assert!(is_error_response(&error, &long));
        let child = Message::parse(br#"{"jsonrpc":"2.0","id":1,"error":{"code":1,"message":"m"}}"#)
            .unwrap()
            .to_json_with_id(Some(&long));
        assert!(is_error_response(&child, &long));
        let raw = serde_json::value::RawValue::from_string("{}".into()).unwrap();
        assert!(!is_error_response(
            &jsonrpc::result_response(&long, &raw),
            &long
        ));
        assert_eq!(method_label("tools/call"), "tools/call");
        assert_eq!(method_label("tools/call2"), "other");
    }
}
