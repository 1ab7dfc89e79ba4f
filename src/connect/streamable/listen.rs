//! The GET stream of Streamable HTTP (PROTOCOL.md sections 2.4 and 2.7): server requests and
//! notifications that belong to no request arrive here.
//!
//! Owns: one task per process, started when the remote accepted `notifications/initialized`.
//! It reconnects after every end, with `Last-Event-ID` when an event id was seen, after the
//! server's `retry` delay or `1 s * 1.5^n` (at most 30 s) after failures, and for ever: the local
//! process outlives remote restarts. A 405 means the remote offers no stream, and the task ends.
//! A 404 starts a session recovery. A new session (generation) restarts the stream at once,
//! without `Last-Event-ID`, taking over the stream recovery opened ahead when there is one.

use super::exchange::DEFAULT_RETRY;
use super::Client;
use crate::connect::backoff;
use crate::connect::http::{EventReader, Failure, Http};
use crate::connect::Inbound;
use std::time::Duration;

impl Client {
    /// Runs the GET stream until the process stops or the remote answers 405.
    pub(super) async fn listen(&self) {
        let mut generations = self.inner.generation.subscribe();
        let mut last_id: Option<String> = None;
        let mut generation = self.session().generation;
        let mut failures: u32 = 0;
        loop {
            // Marked seen before the session is read: an install in between wakes the select.
            generations.borrow_and_update();
            let state = self.session();
            if state.generation != generation {
                generation = state.generation;
                last_id = None;
                failures = 0;
            }
            let mut retry = None;
            let mut got_events = false;
            let outcome = tokio::select! {
                r = self.listen_once(&state, &mut last_id, &mut retry, &mut got_events) => r,
                _ = generations.changed() => continue,
                _ = self.inner.cx.stop.cancelled() => return,
            };
            if got_events {
                failures = 0;
            }
            match outcome {
                Err(f) if f.status() == Some(::http::StatusCode::METHOD_NOT_ALLOWED) => {
                    tracing::info!(
                        "the remote offers no GET stream; server messages come only with responses"
                    );
                    // Recovery then opens no stream ahead that nobody would read.
                    self.inner
                        .listening
                        .store(false, std::sync::atomic::Ordering::SeqCst);
                    return;
                }
                Err(f)
                    if f.status() == Some(::http::StatusCode::NOT_FOUND) && state.id.is_some() =>
                {
                    let recovered = tokio::select! {
                        r = self.recover(state.generation) => r,
                        _ = self.inner.cx.stop.cancelled() => return,
                    };
                    match recovered {
                        Ok(()) => continue,
                        Err(e) => self.note_failure(&mut failures, &e),
                    }
                }
                Err(f) => {
                    // The remote may not keep events (400) or have dropped ours (409...): start
                    // afresh rather than repeat a Last-Event-ID it refuses.
                    if f.status().is_some_and(|s| s.is_client_error()) {
                        last_id = None;
                    }
                    if f.is_auth() {
                        self.inner.http.credentials.renew().await;
                    }
                    self.note_failure(&mut failures, &f)
                }
                Ok(()) => {}
            }
            let delay = match (retry, failures) {
                (Some(r), _) => r.min(crate::connect::MAX_BACKOFF),
                (None, 0) => DEFAULT_RETRY,
                (None, n) => backoff(n),
            };
            // A new session (a recovery) opens its stream at once.
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = generations.changed() => {}
                _ = self.inner.cx.stop.cancelled() => return,
            }
        }
    }

    fn note_failure(&self, failures: &mut u32, why: &Failure) {
        *failures += 1;
        if *failures == 1 {
            tracing::warn!(error = %why, "the GET stream failed; reconnecting");
        } else {
            tracing::debug!(error = %why, attempt = *failures, "the GET stream failed again");
        }
    }

    /// One GET: forwards every message until the stream ends. Updates `last_id` and `retry`
    /// from the events, and sets `got_events` when any event arrived. Cancel safe.
    async fn listen_once(
        &self,
        state: &super::SessionState,
        last_id: &mut Option<String>,
        retry: &mut Option<Duration>,
        got_events: &mut bool,
    ) -> Result<(), Failure> {
        let response = match self.take_handover(state) {
            Some(response) => response,
            None => Http::send(self.get_request(state, last_id.as_deref())).await?,
        };
        if crate::connect::http::body_kind(&response)?
            != crate::connect::http::BodyKind::EventStream
        {
            return Err(Failure::Protocol(
                "the GET stream is not text/event-stream".into(),
            ));
        }
        tracing::debug!("GET stream open");
        let mut reader = EventReader::new(response, self.inner.http.max_message_bytes);
        while let Some(event) = reader.next().await? {
            *got_events = true;
            *last_id = event.id.clone().or(last_id.take());
            *retry = event.retry.or(*retry);
            if event.is_message() {
                if let Some(inbound) = Inbound::parse(event.data.into_bytes()) {
                    inbound.forward(&self.inner.cx.out).await;
                }
            }
        }
        Ok(())
    }
}
