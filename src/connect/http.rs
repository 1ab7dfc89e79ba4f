//! HTTP plumbing shared by the Streamable HTTP and HTTP+SSE clients of `connect`: one reqwest
//! client, the user's headers on every request, failures classified the way the callers branch
//! on them, and bounded readers for JSON and `text/event-stream` bodies.
//!
//! Choices (PROTOCOL.md sections 2.3 and 7): no overall or read timeout on the client, because
//! SSE streams live for hours; only connecting is bounded. Redirects are followed only to the
//! same origin (at most 5), so the user's `Authorization` never reaches another host.

use super::cli::ConnectConfig;
use super::sse::{SseDecoder, SseError, SseEvent};
use super::ConnectError;
use bytes::BytesMut;
use http::{HeaderMap, StatusCode};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::codec::Decoder;

/// Most redirects followed for one request (all to the same origin).
const MAX_REDIRECTS: usize = 5;
/// Characters of an error body quoted in messages.
const BODY_SNIPPET_CHARS: usize = 300;

/// Why an HTTP exchange with the remote failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Failure {
    /// No HTTP answer: connection refused, DNS, TLS, reset, or the connect timeout.
    #[error("cannot reach the remote: {0}")]
    Unreachable(String),
    /// An HTTP answer outside 2xx.
    #[error("the remote answered HTTP {status}{}", describe(.body, .www_authenticate))]
    Status {
        /// The status code.
        status: StatusCode,
        /// The start of the body, trimmed.
        body: String,
        /// The `WWW-Authenticate` header of a 401/403, if any.
        www_authenticate: Option<String>,
    },
    /// A 2xx answer that breaks the transport's rules (content type, body, size).
    #[error("the remote broke the protocol: {0}")]
    Protocol(String),
}

fn describe(body: &str, www_authenticate: &Option<String>) -> String {
    let mut text = String::new();
    if !body.is_empty() {
        text.push_str(&format!(": {body}"));
    }
    if let Some(w) = www_authenticate {
        text.push_str(&format!(" (WWW-Authenticate: {w})"));
    }
    text
}

impl Failure {
    /// The HTTP status, for [`Failure::Status`].
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Failure::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// True for 401 and 403: the remote refused our credentials.
    pub fn is_auth(&self) -> bool {
        matches!(
            self.status(),
            Some(StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN)
        )
    }

    /// The process-level error for a failure during startup: 401/403 is
    /// [`ConnectError::Auth`], no answer is [`ConnectError::Unreachable`], anything else
    /// [`ConnectError::Protocol`]. `what` names the step, e.g. "the initialize POST to URL".
    pub fn into_startup_error(self, what: &str) -> ConnectError {
        let text = format!("{what}: {self}");
        match &self {
            _ if self.is_auth() => {
                ConnectError::Auth(format!("{text}; check --bearer-token-file or --header"))
            }
            Failure::Unreachable(_) => ConnectError::Unreachable(text),
            Failure::Status { status, .. } if status.is_server_error() => {
                ConnectError::Unreachable(text)
            }
            _ => ConnectError::Protocol(text),
        }
    }
}

/// The headers every request carries (`--header`, and the `Authorization` of
/// `--bearer-token-file`), with the token file re-read when the remote refuses the token, so a
/// rotated token is picked up without a restart. Cheap to clone; clones share the headers.
#[derive(Clone, Debug)]
pub struct Credentials {
    current: Arc<Mutex<(HeaderMap, u64)>>,
    token_file: Option<PathBuf>,
}

impl Credentials {
    /// The headers of `config`, at version 0.
    pub fn new(config: &ConnectConfig) -> Credentials {
        Credentials {
            current: Arc::new(Mutex::new((config.headers.clone(), 0))),
            token_file: config.bearer_token_file.clone(),
        }
    }

    /// The headers to send now.
    pub fn headers(&self) -> HeaderMap {
        self.current.lock().expect("credentials lock").0.clone()
    }

    /// The version of the headers sent now (it grows with every change); read it before
    /// building a request, to pass to [`Credentials::renewed_since`] if it is refused.
    pub fn version(&self) -> u64 {
        self.current.lock().expect("credentials lock").1
    }

    /// Re-reads the token file after a refusal, for the next attempt of a connection that is
    /// retried anyway (a GET stream, a reconnect).
    pub async fn renew(&self) {
        let _ = self.renewed_since(u64::MAX).await;
    }

    /// Called after a 401 or 403 to a request sent with the headers of version `seen`:
    /// re-reads `--bearer-token-file` (when there is one) and returns true when the headers
    /// changed since `seen`, by this call or another, so the refused request is worth sending
    /// once more. A file that cannot be read keeps the old token (logged).
    pub async fn renewed_since(&self, seen: u64) -> bool {
        let read = match &self.token_file {
            Some(path) => Some(super::cli::reread_bearer_token(path).await),
            None => None,
        };
        let mut current = self.current.lock().expect("credentials lock");
        if let Some(read) = read {
            match read {
                Ok(value) if current.0.get(http::header::AUTHORIZATION) != Some(&value) => {
                    current.0.insert(http::header::AUTHORIZATION, value);
                    current.1 += 1;
                    tracing::info!(
                        "the remote refused the token; --bearer-token-file holds a new one"
                    );
                }
                Ok(_) => {}
                Err(why) => tracing::warn!(%why, "the remote refused the token; keeping it"),
            }
        }
        current.1 != seen
    }
}

/// The reqwest client with the user's headers and the size bound.
#[derive(Clone, Debug)]
pub struct Http {
    client: reqwest::Client,
    /// The headers every request carries.
    pub credentials: Credentials,
    /// Largest JSON body or SSE event accepted, in bytes.
    pub max_message_bytes: usize,
}

impl Http {
    /// Builds the client from `config`, sending `credentials` on every request: connect
    /// timeout, same-origin redirects, system CAs. Errors: [`ConnectError::Runtime`] when the
    /// TLS backend cannot start.
    pub fn new(config: &ConnectConfig, credentials: Credentials) -> Result<Http, ConnectError> {
        let redirects = reqwest::redirect::Policy::custom(|attempt| {
            let first = attempt.previous().first().map(|u| u.origin());
            if attempt.previous().len() > MAX_REDIRECTS {
                attempt.error("too many redirects")
            } else if first.as_ref() != Some(&attempt.url().origin()) {
                attempt.error("refusing a redirect to another origin")
            } else {
                attempt.follow()
            }
        });
        let client = reqwest::Client::builder()
            .connect_timeout(config.timeout)
            .redirect(redirects)
            .tcp_keepalive(Duration::from_secs(30))
            .build()
            .map_err(|e| ConnectError::Runtime(format!("cannot build the HTTP client: {e}")))?;
        Ok(Http {
            client,
            credentials,
            max_message_bytes: config.max_message_bytes,
        })
    }

    /// A request to `url` carrying the user's headers as they are now.
    pub fn request(&self, method: http::Method, url: reqwest::Url) -> reqwest::RequestBuilder {
        self.client
            .request(method, url)
            .headers(self.credentials.headers())
    }

    /// Sends `request`. Returns the response for a 2xx status. Errors:
    /// [`Failure::Unreachable`] without an answer, [`Failure::Status`] (with the start of the
    /// body) for any other status. Cancel safe: dropping it abandons the request.
    pub async fn send(request: reqwest::RequestBuilder) -> Result<reqwest::Response, Failure> {
        let response = request
            .send()
            .await
            .map_err(|e| Failure::Unreachable(crate::probe::error_chain(&e)))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let www_authenticate = response
            .headers()
            .get(http::header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = tokio::time::timeout(Duration::from_secs(2), response.text())
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        let body: String = body.trim().chars().take(BODY_SNIPPET_CHARS).collect();
        Err(Failure::Status {
            status,
            body,
            www_authenticate,
        })
    }
}

/// What a 2xx response body holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// `application/json`: one message or an array of them.
    Json,
    /// `text/event-stream`.
    EventStream,
    /// No body to read (202, 204, or an empty body).
    Empty,
}

/// Classifies `response` by status and `Content-Type`. Errors: [`Failure::Protocol`] for a
/// body of another type.
pub fn body_kind(response: &reqwest::Response) -> Result<BodyKind, Failure> {
    if matches!(
        response.status(),
        StatusCode::ACCEPTED | StatusCode::NO_CONTENT
    ) || response.content_length() == Some(0)
    {
        return Ok(BodyKind::Empty);
    }
    let content_type = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let essence = content_type.split(';').next().unwrap_or("").trim();
    match essence {
        "application/json" => Ok(BodyKind::Json),
        "text/event-stream" => Ok(BodyKind::EventStream),
        _ => Err(Failure::Protocol(format!(
            "HTTP {} with Content-Type {content_type:?} (expected application/json or \
             text/event-stream)",
            response.status()
        ))),
    }
}

/// Reads a JSON body of at most `max` bytes and splits it into messages: an object is one, an
/// array gives its elements (TypeScript servers may batch). Errors: [`Failure::Protocol`] for an
/// oversized body or one that is not a JSON object or array; [`Failure::Unreachable`] when the
/// connection drops mid-body.
pub async fn json_messages(
    mut response: reqwest::Response,
    max: usize,
) -> Result<Vec<Vec<u8>>, Failure> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| Failure::Unreachable(crate::probe::error_chain(&e)))?
    {
        if body.len() + chunk.len() > max {
            return Err(Failure::Protocol(format!(
                "a JSON body is larger than {max} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    let bad =
        |e: serde_json::Error| Failure::Protocol(format!("the JSON body does not parse: {e}"));
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => {
            let items: Vec<Box<serde_json::value::RawValue>> =
                serde_json::from_slice(&body).map_err(bad)?;
            Ok(items
                .into_iter()
                .map(|m| m.get().as_bytes().to_vec())
                .collect())
        }
        Some(b'{') => Ok(vec![body]),
        _ => Err(Failure::Protocol(
            "the JSON body is not an object or array".into(),
        )),
    }
}

/// Reads [`SseEvent`]s from a `text/event-stream` response, at most `max` bytes per event.
#[derive(Debug)]
pub struct EventReader {
    response: reqwest::Response,
    buf: BytesMut,
    decoder: SseDecoder,
    done: bool,
}

impl EventReader {
    /// Starts reading `response`'s body.
    pub fn new(response: reqwest::Response, max: usize) -> EventReader {
        EventReader {
            response,
            buf: BytesMut::new(),
            decoder: SseDecoder::new(max),
            done: false,
        }
    }

    /// The next event, or `None` at the end of the body. Errors: [`Failure::Unreachable`] when
    /// the connection drops, [`Failure::Protocol`] for an oversized or non-UTF-8 event. Cancel
    /// safe: a chunk already read stays buffered.
    pub async fn next(&mut self) -> Result<Option<SseEvent>, Failure> {
        let protocol = |e: SseError| Failure::Protocol(e.to_string());
        loop {
            if let Some(event) = self.decoder.decode(&mut self.buf).map_err(protocol)? {
                return Ok(Some(event));
            }
            if self.done {
                return self.decoder.decode_eof(&mut self.buf).map_err(protocol);
            }
            match self.response.chunk().await {
                Ok(Some(chunk)) => self.buf.extend_from_slice(&chunk),
                Ok(None) => self.done = true,
                Err(e) => return Err(Failure::Unreachable(crate::probe::error_chain(&e))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[tokio::test]
    async fn a_refused_token_is_replaced_only_when_the_file_holds_a_new_one() {
        let dir = std::env::temp_dir().join(format!("mcp-bridge-renew-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("token");
        std::fs::write(&file, "first\n").unwrap();
        let cli = super::super::ConnectCli::try_parse_from([
            "connect",
            "http://h/",
            "--bearer-token-file",
            file.to_str().unwrap(),
        ])
        .unwrap();
        let credentials = Credentials::new(&ConnectConfig::from_cli(&cli).unwrap());
        let auth = |c: &Credentials| c.headers()[http::header::AUTHORIZATION].clone();
        assert_eq!(auth(&credentials), "Bearer first");
        let seen = credentials.version();
        assert!(
            !credentials.renewed_since(seen).await,
            "same token: nothing new"
        );
        std::fs::write(&file, "second\n").unwrap();
        assert!(credentials.renewed_since(seen).await);
        assert_eq!(auth(&credentials), "Bearer second");
        // A second request refused with the old token sees the renewal too, without a re-read
        // changing anything.
        assert!(credentials.clone().renewed_since(seen).await);
        let now = credentials.version();
        std::fs::remove_file(&file).unwrap();
        assert!(
            !credentials.renewed_since(now).await,
            "an unreadable file keeps the token"
        );
        assert_eq!(auth(&credentials), "Bearer second");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
