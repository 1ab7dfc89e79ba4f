//! `/healthz` (the process serves), `/readyz` (the child is running and initialized, and the
//! bridge is not draining) and `/metrics` (Prometheus text), plus the 404 for other paths.

use crate::app::{AppState, UpstreamState};
use crate::error::HttpError;
use crate::jsonrpc;
use crate::transport::{full, Body};
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use serde_json::json;

/// `None` for GET and HEAD, else the 405 response to send.
fn reject_non_get<B>(req: &Request<B>) -> Option<Response<Body>> {
    if req.method() == Method::GET || req.method() == Method::HEAD {
        return None;
    }
    Some(HttpError::method_not_allowed("GET, HEAD").into_response())
}

fn json(status: StatusCode, value: serde_json::Value) -> Response<Body> {
    let mut resp = Response::new(full(serde_json::to_vec(&value).expect("serializes")));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// The names of the enabled transports.
fn transports(state: &AppState) -> Vec<&'static str> {
    let c = &state.config;
    [
        (c.streamable_http, "streamable-http"),
        (c.sse, "sse"),
        (c.ws, "websocket"),
    ]
    .into_iter()
    .filter_map(|(on, name)| on.then_some(name))
    .collect()
}

/// 200 `{"status":"ok","version":..,"git_sha":..,"uptime_seconds":..,"transports":[..]}` while the process
/// serves HTTP.
pub fn healthz<B>(req: &Request<B>, state: &AppState) -> Response<Body> {
    if let Some(resp) = reject_non_get(req) {
        return resp;
    }
    json(
        StatusCode::OK,
        json!({
            "status": "ok",
            "version": env!("CARGO_PKG_VERSION"),
            "git_sha": crate::metrics::GIT_SHA,
            "uptime_seconds": state.started.elapsed().as_secs(),
            "transports": transports(state),
        }),
    )
}

/// 200 `{"status":"ready"}` only while the child is initialized and the bridge is not draining;
/// otherwise 503 `{"status":"not ready","reason":..}`.
pub fn readyz<B>(req: &Request<B>, state: &AppState) -> Response<Body> {
    if let Some(resp) = reject_non_get(req) {
        return resp;
    }
    let upstream = state.upstream.borrow().clone();
    let reason = match (&upstream, state.shutdown.is_cancelled()) {
        (_, true) => "draining: mcp-bridge is shutting down".to_string(),
        (UpstreamState::Ready(_) | UpstreamState::PerSession, false) => {
            return json(StatusCode::OK, json!({ "status": "ready" }))
        }
        (other, false) => other.describe(),
    };
    json(
        StatusCode::SERVICE_UNAVAILABLE,
        json!({ "status": "not ready", "reason": reason }),
    )
}

/// The bridge's metrics: OpenMetrics 1.0 text when `Accept` names
/// `application/openmetrics-text` (as Prometheus does), else Prometheus text format 0.0.4.
/// 405 for methods other than GET and HEAD.
pub fn metrics<B>(req: &Request<B>, state: &AppState) -> Response<Body> {
    if let Some(resp) = reject_non_get(req) {
        return resp;
    }
    // OpenMetrics for scrapers that ask for it (Prometheus does), else the classic text format.
    let openmetrics = req.headers().get_all(header::ACCEPT).iter().any(|v| {
        v.to_str()
            .unwrap_or("")
            .contains("application/openmetrics-text")
    });
    let text = crate::metrics::render(&state.registry);
    let (body, content_type) = match openmetrics {
        true => (
            text,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ),
        false => (
            crate::metrics::to_text_004(&text),
            "text/plain; version=0.0.4; charset=utf-8",
        ),
    };
    let mut resp = Response::new(full(body));
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// 404 for any other path, naming the MCP endpoint.
pub fn not_found(path: &str, mcp_path: &str) -> Response<Body> {
    HttpError::new(
        StatusCode::NOT_FOUND,
        jsonrpc::INVALID_REQUEST,
        format!("Not Found: {path:?}; the MCP endpoint is {mcp_path:?}"),
    )
    .into_response()
}
