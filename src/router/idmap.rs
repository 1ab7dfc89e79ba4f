//! The routing table of requests in flight to the shared child (DESIGN.md section 2, "Id rewriting").
//!
//! A pure struct: no I/O, no async. Every request forwarded to the child gets a fresh
//! [`UpstreamId`] from one counter; the table maps it back to the session and the client's own
//! [`RequestId`], whose JSON type is kept. Invariants: an upstream id is never reused; a
//! (session, client id) pair maps to at most one in-flight upstream id, so a client cannot have
//! two requests in flight under one id (JSON-RPC forbids it); resolving, cancelling or draining
//! an entry removes both directions of the mapping.

use crate::jsonrpc::RequestId;
use crate::session::SessionKey;
use std::collections::HashMap;

/// The id the child sees: unique for the life of the bridge process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct UpstreamId(pub u64);

/// One request in flight.
#[derive(Debug)]
pub struct Entry<T> {
    /// The session that sent it.
    pub session: SessionKey,
    /// The client's own id, restored on the response.
    pub client_id: RequestId,
    /// Whatever the caller needs to deliver the response (a reply channel in the router).
    pub payload: T,
}

/// The client reused an id that is still in flight in the same session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("request id {0} is already in flight in this session")]
pub struct DuplicateId(pub RequestId);

/// Bidirectional map between upstream ids and (session, client id).
#[derive(Debug)]
pub struct IdMap<T> {
    next: u64,
    by_upstream: HashMap<UpstreamId, Entry<T>>,
    by_client: HashMap<(SessionKey, RequestId), UpstreamId>,
    /// Requests in flight per session (sessions with none are absent).
    per_session: HashMap<SessionKey, usize>,
}

impl<T> Default for IdMap<T> {
    fn default() -> Self {
        IdMap {
            next: 1,
            by_upstream: HashMap::new(),
            by_client: HashMap::new(),
            per_session: HashMap::new(),
        }
    }
}

impl<T> IdMap<T> {
    /// An empty map whose first upstream id is 1.
    pub fn new() -> Self {
        Self::default()
    }

    /// Allocates an upstream id for `client_id` of `session`.
    /// Errors with [`DuplicateId`] when that pair is already in flight (the map is unchanged).
    pub fn allocate(
        &mut self,
        session: SessionKey,
        client_id: RequestId,
        payload: T,
    ) -> Result<UpstreamId, DuplicateId> {
        let key = (session, client_id);
        if self.by_client.contains_key(&key) {
            return Err(DuplicateId(key.1));
        }
        let id = UpstreamId(self.next);
        self.next += 1;
        self.by_client.insert(key.clone(), id);
        let (session, client_id) = key;
        *self.per_session.entry(session).or_default() += 1;
        self.by_upstream.insert(
            id,
            Entry {
                session,
                client_id,
                payload,
            },
        );
        Ok(id)
    }

    /// Takes the entry for a response from the child. `None` for unknown or already-removed ids
    /// (e.g. a response that arrives after cancellation, which is then dropped).
    pub fn resolve(&mut self, id: UpstreamId) -> Option<Entry<T>> {
        let entry = self.by_upstream.remove(&id)?;
        self.by_client
            .remove(&(entry.session, entry.client_id.clone()));
        if let Some(n) = self.per_session.get_mut(&entry.session) {
            *n -= 1;
            if *n == 0 {
                self.per_session.remove(&entry.session);
            }
        }
        Some(entry)
    }

    /// The entry of an in-flight request, without removing it.
    pub fn get(&self, id: UpstreamId) -> Option<&Entry<T>> {
        self.by_upstream.get(&id)
    }

    /// Mutable access to an in-flight request's entry.
    pub fn get_mut(&mut self, id: UpstreamId) -> Option<&mut Entry<T>> {
        self.by_upstream.get_mut(&id)
    }

    /// The sessions that have at least one request in flight, in key order.
    pub fn sessions_in_flight(&self) -> Vec<SessionKey> {
        let mut keys: Vec<SessionKey> = self.per_session.keys().copied().collect();
        keys.sort();
        keys
    }

    /// The upstream ids of `session`'s requests in flight, ascending.
    pub fn requests_of(&self, session: SessionKey) -> Vec<UpstreamId> {
        let mut ids: Vec<UpstreamId> = self
            .by_upstream
            .iter()
            .filter(|(_, e)| e.session == session)
            .map(|(id, _)| *id)
            .collect();
        ids.sort();
        ids
    }

    /// The upstream id of a client's in-flight request, e.g. to translate its
    /// `notifications/cancelled`.
    pub fn upstream_of(&self, session: SessionKey, client_id: &RequestId) -> Option<UpstreamId> {
        self.by_client.get(&(session, client_id.clone())).copied()
    }

    /// Removes and returns every entry of `session` (the session ended), ordered by upstream id.
    pub fn remove_session(&mut self, session: SessionKey) -> Vec<(UpstreamId, Entry<T>)> {
        let ids = self.requests_of(session);
        let mut out: Vec<_> = ids
            .into_iter()
            .filter_map(|id| self.resolve(id).map(|e| (id, e)))
            .collect();
        out.sort_by_key(|(id, _)| *id);
        out
    }

    /// Removes and returns every entry (the child exited), ordered by upstream id.
    pub fn drain(&mut self) -> Vec<(UpstreamId, Entry<T>)> {
        self.by_client.clear();
        self.per_session.clear();
        let mut out: Vec<_> = self.by_upstream.drain().collect();
        out.sort_by_key(|(id, _)| *id);
        out
    }

    /// Number of requests in flight.
    pub fn len(&self) -> usize {
        self.by_upstream.len()
    }

    /// True when nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.by_upstream.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: SessionKey = SessionKey(1);
    const B: SessionKey = SessionKey(2);

    fn num(n: i64) -> RequestId {
        RequestId::Number(n)
    }

    #[test]
    fn same_client_id_in_two_sessions_maps_to_distinct_upstream_ids() {
        let mut map = IdMap::new();
        let a = map.allocate(A, num(1), "a").unwrap();
        let b = map.allocate(B, num(1), "b").unwrap();
        assert_ne!(a, b);
        let eb = map.resolve(b).unwrap();
        assert_eq!((eb.session, eb.client_id, eb.payload), (B, num(1), "b"));
        let ea = map.resolve(a).unwrap();
        assert_eq!((ea.session, ea.payload), (A, "a"));
        assert!(map.is_empty());
    }

    #[test]
    fn string_and_number_ids_with_the_same_text_are_different_requests() {
        let mut map = IdMap::new();
        let n = map.allocate(A, num(1), ()).unwrap();
        let s = map.allocate(A, RequestId::String("1".into()), ()).unwrap();
        assert_eq!(
            map.resolve(s).unwrap().client_id,
            RequestId::String("1".into())
        );
        assert_eq!(map.resolve(n).unwrap().client_id, num(1));
    }

    #[test]
    fn duplicate_in_flight_id_is_rejected_until_resolved() {
        let mut map = IdMap::new();
        let first = map.allocate(A, num(5), 1).unwrap();
        assert_eq!(map.allocate(A, num(5), 2).unwrap_err(), DuplicateId(num(5)));
        assert_eq!(map.len(), 1);
        map.resolve(first).unwrap();
        let again = map.allocate(A, num(5), 3).unwrap();
        assert_ne!(first, again, "upstream ids are never reused");
    }

    #[test]
    fn resolving_twice_or_unknown_ids_yields_nothing() {
        let mut map = IdMap::new();
        let id = map.allocate(A, num(1), ()).unwrap();
        assert!(map.resolve(id).is_some());
        assert!(map.resolve(id).is_none());
        assert!(map.resolve(UpstreamId(999)).is_none());
    }

    #[test]
    fn cancellation_lookup_and_session_removal() {
        let mut map = IdMap::new();
        let a1 = map.allocate(A, num(1), ()).unwrap();
        let a2 = map.allocate(A, num(2), ()).unwrap();
        let b1 = map.allocate(B, num(1), ()).unwrap();
        assert_eq!(map.upstream_of(A, &num(2)), Some(a2));
        assert_eq!(map.sessions_in_flight(), vec![A, B]);
        assert_eq!(map.requests_of(A), vec![a1, a2]);
        assert_eq!(map.upstream_of(B, &num(2)), None);
        let removed: Vec<_> = map
            .remove_session(A)
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(removed, vec![a1, a2]);
        assert_eq!(map.upstream_of(A, &num(1)), None);
        assert_eq!(map.upstream_of(B, &num(1)), Some(b1));
        assert_eq!(map.sessions_in_flight(), vec![B]);
        let drained: Vec<_> = map.drain().into_iter().map(|(id, _)| id).collect();
        assert_eq!(drained, vec![b1]);
        assert!(map.is_empty());
        assert!(map.sessions_in_flight().is_empty());
        assert_eq!(map.upstream_of(B, &num(1)), None);
    }
}
