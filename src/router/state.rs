//! Pure bookkeeping the router keeps besides the id map: resource subscriptions reference-counted
//! per URI, and which session owns which task (DESIGN.md section 2, "Notifications").
//! No I/O, no async.

use crate::session::SessionKey;
use std::collections::{BTreeSet, HashMap};

/// `resources/subscribe` bookkeeping: which sessions want updates for which URI. The child is
/// subscribed to a URI exactly while at least one session is.
#[derive(Debug, Default)]
pub struct Subscriptions {
    by_uri: HashMap<String, BTreeSet<SessionKey>>,
}

impl Subscriptions {
    /// Adds `session` to `uri`'s subscribers. Returns true when it is the first subscriber (the
    /// child must be subscribed).
    pub fn subscribe(&mut self, uri: &str, session: SessionKey) -> bool {
        let set = self.by_uri.entry(uri.to_string()).or_default();
        set.insert(session);
        set.len() == 1
    }

    /// Removes `session` from `uri`'s subscribers. Returns true when that left the URI without
    /// subscribers (the child must be unsubscribed); false also when it was not subscribed.
    pub fn unsubscribe(&mut self, uri: &str, session: SessionKey) -> bool {
        let Some(set) = self.by_uri.get_mut(uri) else {
            return false;
        };
        if !set.remove(&session) || !set.is_empty() {
            return false;
        }
        self.by_uri.remove(uri);
        true
    }

    /// True when `session` is subscribed to `uri`.
    pub fn is_subscribed(&self, uri: &str, session: SessionKey) -> bool {
        self.by_uri.get(uri).is_some_and(|s| s.contains(&session))
    }

    /// The sessions subscribed to `uri`, in key order.
    pub fn subscribers(&self, uri: &str) -> Vec<SessionKey> {
        self.by_uri
            .get(uri)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Every URI with at least one subscriber, sorted (to re-subscribe a restarted child).
    pub fn uris(&self) -> Vec<String> {
        let mut uris: Vec<String> = self.by_uri.keys().cloned().collect();
        uris.sort();
        uris
    }

    /// Drops every subscription of `session`; returns the URIs left without subscribers.
    pub fn remove_session(&mut self, session: SessionKey) -> Vec<String> {
        let uris: Vec<String> = self
            .by_uri
            .iter()
            .filter(|(_, s)| s.contains(&session))
            .map(|(u, _)| u.clone())
            .collect();
        let mut emptied: Vec<String> = uris
            .into_iter()
            .filter(|u| self.unsubscribe(u, session))
            .collect();
        emptied.sort();
        emptied
    }
}

/// Which session created which task (2025-11-25 tasks), so that `tasks/*` and task-related
/// messages stay within the session that owns the task.
#[derive(Debug, Default)]
pub struct TaskOwners {
    owners: HashMap<String, SessionKey>,
}

impl TaskOwners {
    /// Records that `session` created `task_id`.
    pub fn insert(&mut self, task_id: &str, session: SessionKey) {
        self.owners.insert(task_id.to_string(), session);
    }

    /// The owner of `task_id`, if known.
    pub fn owner(&self, task_id: &str) -> Option<SessionKey> {
        self.owners.get(task_id).copied()
    }

    /// Forgets every task of `session`.
    pub fn remove_session(&mut self, session: SessionKey) {
        self.owners.retain(|_, s| *s != session);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: SessionKey = SessionKey(1);
    const B: SessionKey = SessionKey(2);

    #[test]
    fn child_is_subscribed_by_the_first_and_unsubscribed_by_the_last() {
        let mut subs = Subscriptions::default();
        assert!(subs.subscribe("r", A));
        assert!(!subs.subscribe("r", B));
        assert!(!subs.subscribe("r", A), "re-subscribing is not a new first");
        assert_eq!(subs.subscribers("r"), vec![A, B]);
        assert_eq!(subs.uris(), vec!["r".to_string()]);
        assert!(!subs.unsubscribe("r", A));
        assert!(
            !subs.unsubscribe("r", A),
            "unsubscribing twice changes nothing"
        );
        assert!(subs.unsubscribe("r", B));
        assert!(subs.subscribers("r").is_empty());
        assert!(!subs.unsubscribe("never", A));
    }

    #[test]
    fn ending_a_session_reports_uris_left_without_subscribers() {
        let mut subs = Subscriptions::default();
        subs.subscribe("x", A);
        subs.subscribe("y", A);
        subs.subscribe("y", B);
        assert_eq!(subs.remove_session(A), vec!["x".to_string()]);
        assert!(subs.is_subscribed("y", B));
        assert!(!subs.is_subscribed("y", A));
    }

    #[test]
    fn task_owners() {
        let mut t = TaskOwners::default();
        t.insert("t1", A);
        t.insert("t2", B);
        assert_eq!(t.owner("t1"), Some(A));
        t.remove_session(A);
        assert_eq!(t.owner("t1"), None);
        assert_eq!(t.owner("t2"), Some(B));
    }
}
