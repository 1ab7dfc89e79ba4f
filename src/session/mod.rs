//! Session registry: the sessions the bridge has handed out, on every transport, and the streams
//! each one is read through (PROTOCOL.md sections 2.5 and 2.7).
//!
//! Owns: minting session ids from a CSPRNG, looking sessions up by id or internal key, ending
//! them, idle detection, per-session in-flight slots, and each session's [`replay::StreamSet`].
//! Invariants: a session id is 32 lowercase hex characters (visible ASCII, 128 random bits), or
//! with a shared secret a sealed id ([`seal`]) of 76; an ended session is never found again; at most one GET stream per session has a reader (a newer
//! GET replaces the older one); a reader whose outbox is full is disconnected (a Streamable HTTP
//! client may resume from the replay buffer; a connection transport's session then ends) instead
//! of ever blocking the router.

mod caps;
pub mod replay;
pub mod seal;

pub use caps::{ClientCaps, LogLevel};

use crate::child::ChildSlot;
use crate::router::RouterHandle;
use bytes::Bytes;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::{counter::Counter, family::Family, gauge::Gauge};
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
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
    /// The debug-level span `session{session.id, transport}` that the session's requests run
    /// in (disabled, and free, above debug).
    pub span: tracing::Span,
    /// Internal key for routing.
    pub key: SessionKey,
    /// The protocol version negotiated in this session's `initialize`.
    pub version: &'static str,
    /// What the client declared in its `initialize`.
    pub caps: ClientCaps,
    /// The router of the child serving this session (shared, or its own in per-session mode).
    pub router: RouterHandle,
    /// The session's own child, in per-session mode.
    pub child: Option<ChildSlot>,
    /// The transport the session speaks.
    pub transport: Transport,
    /// False for a connection that has not sent `initialize` yet.
    pub initialized: bool,
    /// The session's SSE streams (GET and POST), resumable on Streamable HTTP.
    pub streams: Arc<replay::StreamSet>,
    /// Level set by `logging/setLevel` ([`LogLevel::UNSET`] until then).
    log_level: AtomicU8,
    /// Milliseconds since the registry's epoch at the session's last request.
    last_active_ms: AtomicU64,
    /// Requests of this session being served right now.
    in_flight: Arc<AtomicUsize>,
    /// The principal ([`crate::auth::Principal`]) the session belongs to; 0: none.
    principal: AtomicU64,
    /// Some request named the session after the one that opened it (see
    /// [`Sessions::unclaimed`]).
    claimed: AtomicBool,
}

/// Holds one of a session's in-flight slots; frees it on drop.
#[derive(Debug)]
pub struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What a new session is made of; see [`Sessions::insert`].
#[derive(Debug)]
pub struct NewSession {
    /// Key from [`Sessions::next_key`].
    pub key: SessionKey,
    /// Negotiated protocol version.
    pub version: &'static str,
    /// Declared client capabilities.
    pub caps: ClientCaps,
    /// Router serving the session.
    pub router: RouterHandle,
    /// Its own child (per-session mode).
    pub child: Option<ChildSlot>,
    /// The transport the session speaks.
    pub transport: Transport,
    /// False for a connection (legacy SSE, WebSocket) that has not sent `initialize` yet.
    pub initialized: bool,
}

/// The client-facing transport of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// Streamable HTTP (`Mcp-Session-Id`).
    StreamableHttp,
    /// The 2024-11-05 HTTP+SSE transport (`GET /sse`, `POST /message`).
    Sse,
    /// WebSocket (`GET /ws`).
    WebSocket,
}

impl Transport {
    /// The name used in `/healthz` and logs.
    pub fn name(self) -> &'static str {
        match self {
            Transport::StreamableHttp => "streamable-http",
            Transport::Sse => "sse",
            Transport::WebSocket => "websocket",
        }
    }
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
    /// The level the session set with `logging/setLevel`, if any.
    pub fn log_level(&self) -> Option<LogLevel> {
        LogLevel::from_u8(self.log_level.load(Ordering::Relaxed))
    }

    /// Records the session's `logging/setLevel`.
    pub fn set_log_level(&self, level: LogLevel) {
        self.log_level.store(level as u8, Ordering::Relaxed);
    }

    /// Takes one of the session's `max` in-flight slots, or `None` when all are taken.
    pub fn admit(&self, max: usize) -> Option<InFlight> {
        let before = self.in_flight.fetch_add(1, Ordering::AcqRel);
        let slot = InFlight(self.in_flight.clone());
        (before < max).then_some(slot)
    }

    /// True while a GET stream (or a connection's stream) has a reader.
    pub fn has_stream(&self) -> bool {
        self.streams.get_connected()
    }

    /// Opens a GET stream for this session, replacing (and so ending) any previous one.
    /// Returns its log (for the priming event) and the receiver the response body drains.
    pub fn attach_stream(&self) -> (Arc<replay::EventLog>, mpsc::Receiver<Bytes>) {
        self.streams.open_get()
    }

    /// Offers one encoded SSE event to the session's GET stream without waiting.
    pub fn deliver(&self, event: Bytes) -> Delivery {
        match self.streams.push_get(&event) {
            Some(replay::Push::Sent | replay::Push::Kept) => Delivery::Queued,
            Some(replay::Push::SlowConsumer) => Delivery::SlowConsumer,
            Some(replay::Push::Dropped) | None => Delivery::NoStream,
        }
    }

    /// Disconnects the GET stream's reader (the SSE body sees its channel close and finishes).
    pub fn close_stream(&self) {
        self.streams.disconnect_get();
    }

    /// Binds the session to `principal` ([`crate::auth::Principal`]; 0: none), at creation.
    pub fn bind_principal(&self, principal: crate::auth::Principal) {
        self.principal.store(principal.0, Ordering::Relaxed);
    }

    /// True when a request authenticated as `principal` may use this session: the same
    /// principal that created it (both 0 when authentication is off).
    pub fn belongs_to(&self, principal: crate::auth::Principal) -> bool {
        self.principal.load(Ordering::Relaxed) == principal.0
    }

    /// Marks the session as used after its `initialize` (by a request of its own principal; see
    /// [`Sessions::unclaimed`]).
    pub fn claim(&self) {
        if !self.claimed.load(Ordering::Relaxed) {
            self.claimed.store(true, Ordering::Relaxed);
        }
    }

    /// True when the session negotiated 2025-11-25 or later (priming events, `retry`).
    pub fn wants_priming(&self) -> bool {
        self.version >= "2025-11-25"
    }
}

/// Why a session could not be created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the bridge already holds its maximum of {0} sessions")]
pub struct TooManySessions(pub usize);

#[derive(Debug, Default)]
struct Maps {
    by_id: HashMap<String, Arc<Session>>,
    by_key: HashMap<SessionKey, Arc<Session>>,
}

/// Labels of the per-transport session metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransportLabels {
    /// `streamable-http`, `sse` or `websocket`.
    pub transport: &'static str,
}

/// Metrics of sessions and their streams.
#[derive(Debug, Default, Clone)]
pub struct SessionMetrics {
    /// Open sessions by transport.
    pub active: Family<TransportLabels, Gauge>,
    /// Sessions opened since start, by transport.
    pub opened: Family<TransportLabels, Counter>,
    /// Sessions this replica adopted from a sealed id another replica issued.
    pub adopted: Counter,
    /// Streams and connections closed because the client did not keep up.
    pub slow_consumers: Counter,
    /// SSE response streams open now (Streamable HTTP POST and GET streams, legacy SSE).
    pub sse_streams_open: Gauge,
}

impl SessionMetrics {
    /// Creates the handles and registers them in `r` (names below `mcp_bridge_`).
    pub fn register(r: &mut Registry) -> SessionMetrics {
        let m = SessionMetrics::default();
        for t in [
            Transport::StreamableHttp,
            Transport::Sse,
            Transport::WebSocket,
        ] {
            let labels = TransportLabels {
                transport: t.name(),
            };
            let _ = m.active.get_or_create(&labels);
            let _ = m.opened.get_or_create(&labels);
        }
        r.register(
            "sessions_active",
            "Open sessions by transport",
            m.active.clone(),
        );
        r.register(
            "sessions",
            "Sessions opened since start, by transport",
            m.opened.clone(),
        );
        r.register(
            "sessions_adopted",
            "Sessions adopted from a sealed id another replica issued (MCP_BRIDGE_SESSION_SECRET)",
            m.adopted.clone(),
        );
        r.register(
            "slow_consumers_disconnected",
            "Session streams closed because the client did not keep up",
            m.slow_consumers.clone(),
        );
        r.register(
            "sse_streams_open",
            "SSE response streams open now",
            m.sse_streams_open.clone(),
        );
        m
    }
}

/// The registry of live sessions, shared by the HTTP handlers and the router.
#[derive(Debug)]
pub struct Sessions {
    maps: RwLock<Maps>,
    next_key: AtomicU64,
    max_sessions: usize,
    outbox: usize,
    /// Events kept per resumable stream.
    replay: usize,
    epoch: Instant,
    metrics: SessionMetrics,
    /// Seals Streamable HTTP session ids when a shared secret is set.
    sealer: Option<seal::Sealer>,
    /// Ids being adopted right now, see [`Sessions::adoption_lock`].
    adopting: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Sessions {
    /// An empty registry holding at most `max_sessions` sessions, each stream with a reader
    /// outbox of `outbox` messages and (Streamable HTTP) a replay buffer of `replay` messages.
    pub fn new(max_sessions: usize, outbox: usize, replay: usize) -> Self {
        Sessions {
            maps: RwLock::new(Maps::default()),
            next_key: AtomicU64::new(1),
            max_sessions,
            outbox: outbox.max(1),
            replay,
            epoch: Instant::now(),
            metrics: SessionMetrics::default(),
            sealer: None,
            adopting: Default::default(),
        }
    }

    /// Seals the ids of Streamable HTTP sessions from now on, and adopts sealed ids other
    /// replicas issued ([`seal`]).
    pub fn with_sealer(mut self, sealer: seal::Sealer) -> Self {
        self.sealer = Some(sealer);
        self
    }

    /// Counts sessions in `metrics` (opened and active, by transport) from now on.
    pub fn with_metrics(mut self, metrics: SessionMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// A fresh internal key (never [`SessionKey::BRIDGE`], never reused).
    pub fn next_key(&self) -> SessionKey {
        SessionKey(self.next_key.fetch_add(1, Ordering::Relaxed))
    }

    /// True when another session would exceed the limit.
    pub fn is_full(&self) -> bool {
        self.len() >= self.max_sessions
    }

    /// Registers a session with a fresh CSPRNG id. Errors with [`TooManySessions`] at the limit.
    pub fn insert(&self, new: NewSession) -> Result<Arc<Session>, TooManySessions> {
        let inserted = self.insert_as(new_session_id(), new, crate::auth::Principal(0), false)?;
        Ok(inserted.expect("only adoptions are refused").0)
    }

    /// Registers a Streamable HTTP session opened by `principal`: its id is sealed when a shared
    /// secret is set ([`seal`]), random otherwise. Errors with [`TooManySessions`] at the limit.
    pub fn insert_bound(
        &self,
        new: NewSession,
        principal: crate::auth::Principal,
    ) -> Result<Arc<Session>, TooManySessions> {
        let id = match &self.sealer {
            Some(sealer) if new.transport == Transport::StreamableHttp => {
                sealer.mint(new.version, new.caps, principal, seal::unix_now())
            }
            _ => new_session_id(),
        };
        let inserted = self.insert_as(id, new, principal, false)?;
        Ok(inserted.expect("only adoptions are refused").0)
    }

    /// What the sealed `id` says about the session another replica opened, when `principal` may
    /// have it adopted here; `None` when there is no secret or it is not adoptable (the reason,
    /// [`seal::NotAdoptable`], is logged at debug).
    pub fn unseal(&self, id: &str, principal: crate::auth::Principal) -> Option<seal::Sealed> {
        match self.sealer.as_ref()?.open(id, principal, seal::unix_now()) {
            Ok(sealed) => Some(sealed),
            Err(why) => {
                tracing::debug!(reason = %why, "unknown session id not adopted");
                None
            }
        }
    }

    /// Registers `new` as the session adopted under `id` (see [`Sessions::unseal`]) for
    /// `principal`, claimed by the adopting request. Returns it and true, or the session a
    /// concurrent request registered under `id` first and false; `Ok(None)` when the session
    /// ended here meanwhile (then it stays ended). Errors with [`TooManySessions`] at the limit.
    pub fn register_adopted(
        &self,
        id: &str,
        new: NewSession,
        principal: crate::auth::Principal,
    ) -> Result<Option<(Arc<Session>, bool)>, TooManySessions> {
        let adopted = self.insert_as(id.to_string(), new, principal, true)?;
        if let Some((session, true)) = &adopted {
            session.claim();
            self.metrics.adopted.inc();
            tracing::debug!(session.id = %id, "session adopted from another replica");
        }
        Ok(adopted)
    }

    /// The lock that lets one request at a time adopt the session `id`: concurrent requests
    /// (a client's POST and GET) wait for the first instead of each starting a child. Call
    /// [`Sessions::adoption_done`] after the attempt.
    pub fn adoption_lock(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut adopting = self.adopting.lock().expect("adopting lock");
        adopting.entry(id.to_string()).or_default().clone()
    }

    /// Forgets the adoption lock of `id` (later requests find the session, or try afresh).
    pub fn adoption_done(&self, id: &str) {
        self.adopting.lock().expect("adopting lock").remove(id);
    }

    /// Registers `new` under `id`. Returns the session and true, or the session already
    /// registered under `id` and false; `Ok(None)` for an `adopted` id that ended here meanwhile.
    fn insert_as(
        &self,
        id: String,
        new: NewSession,
        principal: crate::auth::Principal,
        adopted: bool,
    ) -> Result<Option<(Arc<Session>, bool)>, TooManySessions> {
        let span = tracing::debug_span!(parent: None, "session", session.id = %id, transport = new.transport.name());
        let session = Arc::new(Session {
            span,
            id,
            key: new.key,
            version: new.version,
            caps: new.caps,
            router: new.router,
            child: new.child,
            transport: new.transport,
            initialized: new.initialized,
            streams: Arc::new(replay::StreamSet::new(
                self.replay,
                new.transport == Transport::StreamableHttp,
                self.outbox,
            )),
            log_level: AtomicU8::new(LogLevel::UNSET),
            last_active_ms: AtomicU64::new(self.now_ms()),
            in_flight: Arc::default(),
            principal: AtomicU64::new(principal.0),
            claimed: AtomicBool::new(false),
        });
        let mut maps = self.maps.write().expect("sessions lock");
        if let Some(existing) = maps.by_id.get(&session.id) {
            return Ok(Some((existing.clone(), false)));
        }
        let buried = |s: &seal::Sealer| s.is_buried(&session.id);
        if adopted && self.sealer.as_ref().is_some_and(buried) {
            return Ok(None);
        }
        if maps.by_id.len() >= self.max_sessions {
            return Err(TooManySessions(self.max_sessions));
        }
        maps.by_id.insert(session.id.clone(), session.clone());
        maps.by_key.insert(session.key, session.clone());
        let labels = TransportLabels {
            transport: session.transport.name(),
        };
        self.metrics.opened.get_or_create(&labels).inc();
        self.metrics.active.get_or_create(&labels).inc();
        Ok(Some((session, true)))
    }

    /// Marks the connection session `key` initialized with what its `initialize` established
    /// (`new.key` must equal `key`): the entry is replaced, keeping id, open stream, log level
    /// and activity. Returns the new entry, `None` when the session is gone.
    pub fn establish(&self, new: NewSession) -> Option<Arc<Session>> {
        let mut maps = self.maps.write().expect("sessions lock");
        let old = maps.by_key.get(&new.key)?.clone();
        let session = Arc::new(Session {
            span: old.span.clone(),
            id: old.id.clone(),
            key: old.key,
            version: new.version,
            caps: new.caps,
            router: new.router,
            child: new.child,
            transport: old.transport,
            initialized: true,
            streams: old.streams.clone(),
            log_level: AtomicU8::new(old.log_level.load(Ordering::Relaxed)),
            last_active_ms: AtomicU64::new(self.now_ms()),
            in_flight: old.in_flight.clone(),
            principal: AtomicU64::new(old.principal.load(Ordering::Relaxed)),
            claimed: AtomicBool::new(old.claimed.load(Ordering::Relaxed)),
        });
        maps.by_id.insert(session.id.clone(), session.clone());
        maps.by_key.insert(session.key, session.clone());
        Some(session)
    }

    /// Looks a session up by its `Mcp-Session-Id` and marks it active.
    pub fn get(&self, id: &str) -> Option<Arc<Session>> {
        let session = self
            .maps
            .read()
            .expect("sessions lock")
            .by_id
            .get(id)
            .cloned()?;
        session
            .last_active_ms
            .store(self.now_ms(), Ordering::Relaxed);
        Some(session)
    }

    /// Looks a session up by its internal key.
    pub fn by_key(&self, key: SessionKey) -> Option<Arc<Session>> {
        self.maps
            .read()
            .expect("sessions lock")
            .by_key
            .get(&key)
            .cloned()
    }

    /// Ends a session: removes it and closes its GET stream. Returns it if it existed.
    pub fn remove(&self, id: &str) -> Option<Arc<Session>> {
        let mut maps = self.maps.write().expect("sessions lock");
        let session = maps.by_id.remove(id)?;
        maps.by_key.remove(&session.key);
        // Buried under the maps lock, so that an adoption finishing now cannot bring it back.
        if let Some(sealer) = &self.sealer {
            sealer.bury(id, seal::unix_now());
        }
        drop(maps);
        let labels = TransportLabels {
            transport: session.transport.name(),
        };
        self.metrics.active.get_or_create(&labels).dec();
        session.close_stream();
        Some(session)
    }

    /// Number of live sessions.
    pub fn len(&self) -> usize {
        self.maps.read().expect("sessions lock").by_id.len()
    }

    /// True when no session is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every live session (a snapshot).
    pub fn all(&self) -> Vec<Arc<Session>> {
        self.maps
            .read()
            .expect("sessions lock")
            .by_id
            .values()
            .cloned()
            .collect()
    }

    /// Offers `event` to the GET stream of every session that `filter` accepts. Returns how many
    /// sessions were cut off as slow consumers.
    pub fn broadcast(&self, event: &Bytes, filter: impl Fn(&Session) -> bool) -> usize {
        let maps = self.maps.read().expect("sessions lock");
        maps.by_id
            .values()
            .filter(|s| filter(s) && s.deliver(event.clone()) == Delivery::SlowConsumer)
            .count()
    }

    /// Closes every GET stream (used at shutdown so that open streams do not hold the drain).
    pub fn close_all_streams(&self) {
        for s in self.maps.read().expect("sessions lock").by_id.values() {
            s.close_stream();
        }
    }

    /// Requests all sessions have in flight right now.
    pub fn in_flight(&self) -> usize {
        let maps = self.maps.read().expect("sessions lock");
        maps.by_id
            .values()
            .map(|s| s.in_flight.load(Ordering::Acquire))
            .sum()
    }

    /// Sessions with no request for `idle`, no open GET stream and nothing in flight.
    pub fn idle(&self, idle: Duration) -> Vec<Arc<Session>> {
        let cutoff = self.now_ms().saturating_sub(idle.as_millis() as u64);
        let maps = self.maps.read().expect("sessions lock");
        maps.by_id
            .values()
            .filter(|s| {
                let quiet = s.last_active_ms.load(Ordering::Relaxed) < cutoff;
                quiet && !s.has_stream() && s.in_flight.load(Ordering::Acquire) == 0
            })
            .cloned()
            .collect()
    }

    /// With sealed ids: Streamable HTTP sessions that no request has named since their
    /// `initialize`, `window` on (the caller passes [`seal::ADOPT_WINDOW_SECS`]). Their
    /// follow-ups went to another replica, which adopted them, or never came; either way they are
    /// not used here again (an id is not adoptable after the window, so a late client gets 404
    /// and opens a new session). Empty without a secret.
    pub fn unclaimed(&self, window: Duration) -> Vec<Arc<Session>> {
        if self.sealer.is_none() {
            return Vec::new();
        }
        let cutoff = self.now_ms().saturating_sub(window.as_millis() as u64);
        let maps = self.maps.read().expect("sessions lock");
        maps.by_id
            .values()
            .filter(|s| {
                s.transport == Transport::StreamableHttp
                    && !s.claimed.load(Ordering::Relaxed)
                    && s.last_active_ms.load(Ordering::Relaxed) < cutoff
                    && !s.has_stream()
                    && s.in_flight.load(Ordering::Acquire) == 0
            })
            .cloned()
            .collect()
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
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
    fn with_a_secret_ids_are_sealed_and_sessions_nobody_followed_up_are_unclaimed() {
        let sealed = Sessions::new(10, 4, 4).with_sealer(seal::Sealer::new(&[7; 32]));
        let principal = crate::auth::Principal(3);
        let new = |sessions: &Sessions| NewSession {
            key: sessions.next_key(),
            version: "2025-06-18",
            caps: ClientCaps::default(),
            router: RouterHandle::detached(),
            child: None,
            transport: Transport::StreamableHttp,
            initialized: true,
        };
        let used = sealed.insert_bound(new(&sealed), principal).unwrap();
        let unused = sealed.insert_bound(new(&sealed), principal).unwrap();
        assert_eq!(used.id.len(), seal::SEALED_LEN);
        assert!(used.belongs_to(principal));
        std::thread::sleep(Duration::from_millis(20));
        sealed.get(&used.id).unwrap().claim();
        let window = Duration::from_millis(10);
        let unclaimed: Vec<String> = sealed
            .unclaimed(window)
            .iter()
            .map(|s| s.id.clone())
            .collect();
        assert_eq!(unclaimed, vec![unused.id.clone()]);
        // An adopted session counts as claimed by the request that adopted it.
        let other = Sessions::new(10, 4, 4).with_sealer(seal::Sealer::new(&[7; 32]));
        let opened = other.unseal(&unused.id, principal).unwrap();
        assert_eq!(opened.version, "2025-06-18");
        let (adopted, fresh) = other
            .register_adopted(&unused.id, new(&other), principal)
            .unwrap()
            .unwrap();
        assert!(fresh && adopted.belongs_to(principal));
        let (again, fresh) = other
            .register_adopted(&unused.id, new(&other), principal)
            .unwrap()
            .unwrap();
        assert!(!fresh && Arc::ptr_eq(&adopted, &again));
        // Ended here, a late adoption of the same id does not bring it back.
        other.remove(&unused.id).unwrap();
        let late = other.register_adopted(&unused.id, new(&other), principal);
        assert!(matches!(late, Ok(None)), "{late:?}");
        assert!(other.get(&unused.id).is_none());
        std::thread::sleep(Duration::from_millis(20));
        assert!(other.unclaimed(window).is_empty());
        // Without a secret: random ids, nothing is ever unclaimed.
        let plain = Sessions::new(10, 4, 4);
        let s = plain.insert_bound(new(&plain), principal).unwrap();
        assert_eq!(s.id.len(), 32);
        std::thread::sleep(Duration::from_millis(20));
        assert!(plain.unclaimed(window).is_empty());
        assert!(plain.unseal(&used.id, principal).is_none());
    }

    fn new_session(sessions: &Sessions) -> Result<Arc<Session>, TooManySessions> {
        sessions.insert(NewSession {
            key: sessions.next_key(),
            version: "2025-11-25",
            caps: ClientCaps::default(),
            router: RouterHandle::detached(),
            child: None,
            transport: Transport::StreamableHttp,
            initialized: true,
        })
    }

    #[test]
    fn session_ids_are_unique_visible_ascii() {
        let sessions = Sessions::new(100, 4, 16);
        let a = new_session(&sessions).unwrap();
        let b = new_session(&sessions).unwrap();
        assert_ne!(a.id, b.id);
        assert_ne!(a.key, b.key);
        assert_eq!(a.id.len(), 32);
        assert!(a.id.bytes().all(|c| (0x21..=0x7e).contains(&c)));
        assert_eq!(sessions.by_key(a.key).unwrap().id, a.id);
    }

    #[test]
    fn removed_sessions_are_gone_and_limit_is_enforced() {
        let sessions = Sessions::new(1, 4, 16);
        let a = new_session(&sessions).unwrap();
        assert_eq!(new_session(&sessions).unwrap_err(), TooManySessions(1));
        assert!(sessions.remove(&a.id).is_some());
        assert!(sessions.get(&a.id).is_none());
        assert!(sessions.by_key(a.key).is_none());
        assert!(new_session(&sessions).is_ok());
    }

    #[test]
    fn new_stream_replaces_old_and_full_outbox_cuts_the_reader() {
        let sessions = Sessions::new(10, 2, 16);
        let s = new_session(&sessions).unwrap();
        assert_eq!(s.deliver(Bytes::from_static(b"x")), Delivery::NoStream);
        let (_, mut old) = s.attach_stream();
        let (_, mut new) = s.attach_stream();
        assert!(old.try_recv().is_err());
        assert_eq!(s.deliver(Bytes::from_static(b"1")), Delivery::Queued);
        assert_eq!(
            new.try_recv().unwrap(),
            Bytes::from_static(b"id: 1-1\n1"),
            "Streamable HTTP events carry ids"
        );
        assert_eq!(s.deliver(Bytes::from_static(b"2")), Delivery::Queued);
        assert_eq!(s.deliver(Bytes::from_static(b"3")), Delivery::Queued);
        assert_eq!(sessions.broadcast(&Bytes::from_static(b"4"), |_| true), 1);
        assert!(!s.has_stream(), "the slow reader was disconnected");
        assert_eq!(
            s.deliver(Bytes::from_static(b"5")),
            Delivery::Queued,
            "kept for a resuming reader"
        );
        let (replay, _) = s.streams.resume("1-3").unwrap();
        assert_eq!(replay.len(), 2, "4 and 5 are replayed");
    }

    #[test]
    fn connection_sessions_have_no_replay() {
        let sessions = Sessions::new(10, 1, 16);
        let s = sessions
            .insert(NewSession {
                key: sessions.next_key(),
                version: "2024-11-05",
                caps: ClientCaps::default(),
                router: RouterHandle::detached(),
                child: None,
                transport: Transport::WebSocket,
                initialized: false,
            })
            .unwrap();
        let (_, mut rx) = s.attach_stream();
        assert_eq!(s.deliver(Bytes::from_static(b"1")), Delivery::Queued);
        assert_eq!(
            rx.try_recv().unwrap(),
            Bytes::from_static(b"1"),
            "no id line"
        );
        assert_eq!(s.deliver(Bytes::from_static(b"2")), Delivery::Queued);
        assert_eq!(s.deliver(Bytes::from_static(b"3")), Delivery::SlowConsumer);
        assert_eq!(s.deliver(Bytes::from_static(b"4")), Delivery::NoStream);
    }

    #[test]
    fn establishing_a_connection_session_keeps_its_id_and_stream() {
        let sessions = Sessions::new(10, 4, 16);
        let pending = sessions
            .insert(NewSession {
                key: sessions.next_key(),
                version: "2025-11-25",
                caps: ClientCaps::default(),
                router: RouterHandle::detached(),
                child: None,
                transport: Transport::Sse,
                initialized: false,
            })
            .unwrap();
        let (_, mut rx) = pending.attach_stream();
        let caps = ClientCaps {
            sampling: true,
            ..ClientCaps::default()
        };
        let new = NewSession {
            key: pending.key,
            version: "2024-11-05",
            caps,
            router: RouterHandle::detached(),
            child: None,
            transport: Transport::StreamableHttp,
            initialized: true,
        };
        let live = sessions.establish(new).unwrap();
        assert_eq!(
            (live.id.as_str(), live.key),
            (pending.id.as_str(), pending.key)
        );
        assert!(live.initialized && live.caps.sampling);
        assert_eq!(
            live.transport,
            Transport::Sse,
            "the transport stays the connection's"
        );
        assert_eq!(live.deliver(Bytes::from_static(b"x")), Delivery::Queued);
        assert_eq!(rx.try_recv().unwrap(), Bytes::from_static(b"x"));
        assert!(sessions.get(&pending.id).unwrap().initialized);
    }

    #[test]
    fn in_flight_slots_are_bounded_and_freed_on_drop() {
        let sessions = Sessions::new(10, 2, 16);
        let s = new_session(&sessions).unwrap();
        let a = s.admit(2).unwrap();
        let _b = s.admit(2).unwrap();
        assert!(s.admit(2).is_none());
        drop(a);
        assert!(s.admit(2).is_some());
    }

    #[test]
    fn idle_sessions_are_those_without_requests_or_streams() {
        let sessions = Sessions::new(10, 2, 16);
        let a = new_session(&sessions).unwrap();
        let b = new_session(&sessions).unwrap();
        let (_log, _stream) = b.attach_stream();
        std::thread::sleep(Duration::from_millis(30));
        let idle: Vec<_> = sessions
            .idle(Duration::from_millis(10))
            .into_iter()
            .map(|s| s.key)
            .collect();
        assert_eq!(idle, vec![a.key]);
        sessions.get(&a.id);
        assert!(sessions.idle(Duration::from_millis(10)).is_empty());
    }
}
