//! Session registry: the Streamable HTTP sessions the bridge has handed out and the stream each
//! one listens on (PROTOCOL.md section 2.5).
//!
//! Owns: minting `Mcp-Session-Id` values from a CSPRNG, looking sessions up, ending them, and each
//! session's bounded outbox towards its GET stream. Invariants: a session id is 32 lowercase hex
//! characters (visible ASCII, 128 random bits); an ended session is never found again; at most
//! one GET stream per session receives messages (a newer GET replaces the older one); a message
//! for a session whose outbox is full closes that session's stream (the session stays) instead of
//! ever blocking the router.

use bytes::Bytes;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::mpsc;

/// Compact internal key of a session, used in the router's id map instead of the long id string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionKey(pub u64);

impl SessionKey {
    /// The key of requests the bridge itself sends to the child (its own `initialize`).
    pub const BRIDGE: SessionKey = SessionKey(0);
}

/// One client session.
#[derive(Debug)]
pub struct Session {
    /// The `Mcp-Session-Id` value.
    pub id: String,
    /// Internal key for routing.
    pub key: SessionKey,
    /// The protocol version negotiated in this session's `initialize`.
    pub version: &'static str,
    /// Sender half of the current GET stream's outbox, if a GET stream is open.
    stream: Mutex<Option<mpsc::Sender<Bytes>>>,
    /// Capacity of a GET stream's outbox, in messages.
    outbox: usize,
}

/// What became of a message offered to a session's GET stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Queued on the open GET stream.
    Queued,
    /// No GET stream is open; the message was dropped (as the SDK servers do).
    NoStream,
    /// The outbox was full: the stream was closed (slow consumer) and the message dropped.
    SlowConsumer,
}

impl Session {
    /// Opens a GET stream for this session, replacing (and so ending) any previous one.
    /// Returns the receiver the SSE response body drains.
    pub fn attach_stream(&self) -> mpsc::Receiver<Bytes> {
        let (tx, rx) = mpsc::channel(self.outbox);
        *self.stream.lock().expect("stream lock") = Some(tx);
        rx
    }

    /// Offers one encoded SSE event to the session's GET stream without waiting.
    pub fn deliver(&self, event: Bytes) -> Delivery {
        let mut slot = self.stream.lock().expect("stream lock");
        let Some(tx) = slot.as_ref() else {
            return Delivery::NoStream;
        };
        match tx.try_send(event) {
            Ok(()) => Delivery::Queued,
            Err(mpsc::error::TrySendError::Closed(_)) => {
                *slot = None;
                Delivery::NoStream
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                *slot = None;
                Delivery::SlowConsumer
            }
        }
    }

    /// Ends the GET stream, if any (the SSE body sees its channel close and finishes).
    pub fn close_stream(&self) {
        *self.stream.lock().expect("stream lock") = None;
    }
}

/// Why a session could not be created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the bridge already holds its maximum of {0} sessions")]
pub struct TooManySessions(pub usize);

/// The registry of live sessions, shared by the HTTP handlers and the router.
#[derive(Debug)]
pub struct Sessions {
    map: RwLock<HashMap<String, Arc<Session>>>,
    next_key: AtomicU64,
    max_sessions: usize,
    outbox: usize,
}

impl Sessions {
    /// An empty registry holding at most `max_sessions` sessions, each GET stream with an outbox
    /// of `outbox` messages.
    pub fn new(max_sessions: usize, outbox: usize) -> Self {
        Sessions {
            map: RwLock::new(HashMap::new()),
            next_key: AtomicU64::new(1),
            max_sessions,
            outbox: outbox.max(1),
        }
    }

    /// Creates a session that negotiated `version`. Errors with [`TooManySessions`] at the limit.
    pub fn create(&self, version: &'static str) -> Result<Arc<Session>, TooManySessions> {
        let session = Arc::new(Session {
            id: new_session_id(),
            key: SessionKey(self.next_key.fetch_add(1, Ordering::Relaxed)),
            version,
            stream: Mutex::new(None),
            outbox: self.outbox,
        });
        let mut map = self.map.write().expect("sessions lock");
        if map.len() >= self.max_sessions {
            return Err(TooManySessions(self.max_sessions));
        }
        map.insert(session.id.clone(), session.clone());
        Ok(session)
    }

    /// Looks a session up by its `Mcp-Session-Id`.
    pub fn get(&self, id: &str) -> Option<Arc<Session>> {
        self.map.read().expect("sessions lock").get(id).cloned()
    }

    /// Ends a session: removes it and closes its GET stream. Returns it if it existed.
    pub fn remove(&self, id: &str) -> Option<Arc<Session>> {
        let session = self.map.write().expect("sessions lock").remove(id)?;
        session.close_stream();
        Some(session)
    }

    /// Number of live sessions.
    pub fn len(&self) -> usize {
        self.map.read().expect("sessions lock").len()
    }

    /// True when no session is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Offers `event` to every session's GET stream. Returns how many sessions were cut off as
    /// slow consumers.
    pub fn broadcast(&self, event: &Bytes) -> usize {
        let map = self.map.read().expect("sessions lock");
        map.values()
            .filter(|s| s.deliver(event.clone()) == Delivery::SlowConsumer)
            .count()
    }

    /// Closes every GET stream (used at shutdown so that open streams do not hold the drain).
    pub fn close_all_streams(&self) {
        for s in self.map.read().expect("sessions lock").values() {
            s.close_stream();
        }
    }
}

/// A new session id: 128 bits from the operating system's CSPRNG as 32 lowercase hex characters.
fn new_session_id() -> String {
    let mut raw = [0u8; 16];
    getrandom::fill(&mut raw).expect("the operating system CSPRNG is available");
    raw.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_are_unique_visible_ascii() {
        let sessions = Sessions::new(100, 4);
        let a = sessions.create("2025-11-25").unwrap();
        let b = sessions.create("2025-11-25").unwrap();
        assert_ne!(a.id, b.id);
        assert_ne!(a.key, b.key);
        assert_eq!(a.id.len(), 32);
        assert!(a.id.bytes().all(|c| (0x21..=0x7e).contains(&c)));
    }

    #[test]
    fn removed_sessions_are_gone_and_limit_is_enforced() {
        let sessions = Sessions::new(1, 4);
        let a = sessions.create("2025-06-18").unwrap();
        assert_eq!(
            sessions.create("2025-06-18").unwrap_err(),
            TooManySessions(1)
        );
        assert!(sessions.remove(&a.id).is_some());
        assert!(sessions.get(&a.id).is_none());
        assert!(sessions.create("2025-06-18").is_ok());
    }

    #[test]
    fn new_stream_replaces_old_and_full_outbox_cuts_the_stream() {
        let sessions = Sessions::new(10, 2);
        let s = sessions.create("2025-11-25").unwrap();
        assert_eq!(s.deliver(Bytes::from_static(b"x")), Delivery::NoStream);
        let mut old = s.attach_stream();
        let mut new = s.attach_stream();
        assert!(old.try_recv().is_err());
        assert_eq!(s.deliver(Bytes::from_static(b"1")), Delivery::Queued);
        assert_eq!(new.try_recv().unwrap(), Bytes::from_static(b"1"));
        assert_eq!(s.deliver(Bytes::from_static(b"2")), Delivery::Queued);
        assert_eq!(s.deliver(Bytes::from_static(b"3")), Delivery::Queued);
        assert_eq!(sessions.broadcast(&Bytes::from_static(b"4")), 1);
        assert_eq!(s.deliver(Bytes::from_static(b"5")), Delivery::NoStream);
    }
}
