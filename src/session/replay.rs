//! Resumable SSE streams (PROTOCOL.md section 2.7): each stream of a session (its GET stream, or
//! the stream answering one POST) is an [`EventLog`] that numbers its events, keeps the last
//! `cap` of them, and forwards each to the connection currently reading the stream, if any. A
//! client that lost the connection reconnects with `Last-Event-ID` and gets exactly the events
//! after that id, on that stream only.
//!
//! Event ids are `<stream>-<seq>`: unique across the session's streams and naming the stream
//! they belong to. Sequence numbers start at 1; a priming event carries `<stream>-0`.

use bytes::{BufMut, Bytes, BytesMut};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// What [`EventLog::push`] did with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    /// Sent to the connected reader.
    Sent,
    /// Kept for replay only: no reader is connected.
    Kept,
    /// Not kept: the log retains nothing and no reader is connected.
    Dropped,
    /// The reader's outbox was full: it was disconnected (it may resume from the log).
    SlowConsumer,
}

/// Why a `Last-Event-ID` cannot be honoured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResumeError {
    /// Not of the form `<stream>-<seq>`, or no such stream in this session.
    #[error("unknown Last-Event-ID {0:?}: no such stream in this session")]
    Unknown(String),
    /// The events after it were already dropped from the replay buffer.
    #[error(
        "Last-Event-ID {0:?} is older than the replay buffer (--replay-buffer): events were lost"
    )]
    Expired(String),
}

/// Parses a `Last-Event-ID` value into `(stream, seq)`.
pub fn parse_event_id(id: &str) -> Option<(u32, u64)> {
    let (stream, seq) = id.split_once('-')?;
    Some((stream.parse().ok()?, seq.parse().ok()?))
}

/// Most bytes one stream keeps for replay; older events are dropped first.
pub const MAX_REPLAY_BYTES: usize = 4 * 1024 * 1024;
/// How long a stream with no reader keeps events for a reconnect. After that, a GET stream
/// stops keeping (a client that went away for good costs nothing) and a finished POST stream
/// is forgotten.
pub const RESUME_WINDOW: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
struct Inner {
    events: VecDeque<(u64, Bytes)>,
    bytes: usize,
    next: u64,
    reader: Option<mpsc::Sender<Bytes>>,
    /// Since when no reader is connected (`None` while one is).
    readerless_since: Option<Instant>,
    finished: bool,
}

impl Inner {
    fn drop_reader(&mut self) {
        self.reader = None;
        self.readerless_since.get_or_insert_with(Instant::now);
    }

    /// True when no reader came back within the resume window.
    fn abandoned(&self) -> bool {
        self.readerless_since
            .is_some_and(|t| t.elapsed() > RESUME_WINDOW)
    }
}

/// One stream's numbered, bounded event log and its current reader.
#[derive(Debug)]
pub struct EventLog {
    stream: u32,
    cap: usize,
    /// Whether events carry `id:` lines (Streamable HTTP) or go out bare (legacy SSE, WebSocket).
    ids: bool,
    inner: Mutex<Inner>,
}

impl EventLog {
    /// A log for stream number `stream` keeping the last `cap` events (0: keep none), writing
    /// `id:` lines when `ids`.
    pub fn new(stream: u32, cap: usize, ids: bool) -> EventLog {
        let inner = Inner {
            next: 1,
            readerless_since: Some(Instant::now()),
            ..Inner::default()
        };
        EventLog {
            stream,
            cap,
            ids,
            inner: Mutex::new(inner),
        }
    }

    /// The stream number.
    pub fn stream(&self) -> u32 {
        self.stream
    }

    /// Appends one encoded SSE event (`event: message\ndata: ...\n\n`), numbering it, and
    /// offers it to the reader without waiting.
    pub fn push(&self, event: &Bytes) -> Push {
        let mut inner = self.inner.lock().expect("log lock");
        let seq = inner.next;
        inner.next += 1;
        let framed = if self.ids {
            self.with_id(seq, event)
        } else {
            event.clone()
        };
        let keep = self.cap > 0 && !inner.abandoned();
        if keep {
            inner.bytes += framed.len();
            inner.events.push_back((seq, framed.clone()));
            while inner.events.len() > self.cap
                || (inner.bytes > MAX_REPLAY_BYTES && inner.events.len() > 1)
            {
                let (_, old) = inner.events.pop_front().expect("not empty");
                inner.bytes -= old.len();
            }
        } else if inner.abandoned() {
            inner.events.clear();
            inner.bytes = 0;
        }
        let kept = if keep { Push::Kept } else { Push::Dropped };
        let Some(reader) = inner.reader.as_ref() else {
            return kept;
        };
        match reader.try_send(framed) {
            Ok(()) => Push::Sent,
            Err(mpsc::error::TrySendError::Closed(_)) => {
                inner.drop_reader();
                kept
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                inner.drop_reader();
                Push::SlowConsumer
            }
        }
    }

    /// Connects a reader with an outbox of `outbox` events, replacing (and so ending) any
    /// previous one. Returns the events after `after` (a sequence number; `None`: none) and the
    /// receiver of what follows; the receiver closes once a finished stream has been drained.
    /// Errors: [`ResumeError::Expired`] when events after `after` were already dropped.
    pub fn attach(
        &self,
        after: Option<u64>,
        outbox: usize,
    ) -> Result<(Vec<Bytes>, mpsc::Receiver<Bytes>), ResumeError> {
        let mut inner = self.inner.lock().expect("log lock");
        let replay = match after {
            None => Vec::new(),
            Some(after) => {
                let oldest = inner.events.front().map_or(inner.next, |(seq, _)| *seq);
                if after.saturating_add(1) < oldest {
                    return Err(ResumeError::Expired(format!("{}-{after}", self.stream)));
                }
                inner
                    .events
                    .iter()
                    .filter(|(seq, _)| *seq > after)
                    .map(|(_, e)| e.clone())
                    .collect()
            }
        };
        let (tx, rx) = mpsc::channel(outbox.max(1));
        if inner.finished {
            inner.drop_reader();
        } else {
            inner.reader = Some(tx);
            inner.readerless_since = None;
        }
        Ok((replay, rx))
    }

    /// Marks the stream complete (a POST stream after its response): the reader's channel closes
    /// after the events already sent.
    pub fn finish(&self) {
        let mut inner = self.inner.lock().expect("log lock");
        inner.finished = true;
        inner.drop_reader();
    }

    /// Disconnects the reader (its channel closes); the log stays for resumption.
    pub fn disconnect(&self) {
        self.inner.lock().expect("log lock").drop_reader();
    }

    /// True for a finished stream no reader came back to within the resume window.
    fn expired(&self) -> bool {
        let inner = self.inner.lock().expect("log lock");
        inner.finished && inner.abandoned()
    }

    /// True while a reader is connected.
    pub fn has_reader(&self) -> bool {
        self.inner
            .lock()
            .expect("log lock")
            .reader
            .as_ref()
            .is_some_and(|r| !r.is_closed())
    }

    /// The priming event (PROTOCOL.md section 2.3, 2025-11-25): an id before any event, so a
    /// client that loses the connection can resume from the start, and the reconnection delay.
    pub fn priming(&self, retry_ms: u64) -> Bytes {
        Bytes::from(format!(
            "id: {}-0\nretry: {retry_ms}\ndata: \n\n",
            self.stream
        ))
    }

    fn with_id(&self, seq: u64, event: &Bytes) -> Bytes {
        let mut out = BytesMut::with_capacity(event.len() + 24);
        out.put_slice(format!("id: {}-{seq}\n", self.stream).as_bytes());
        out.put_slice(event);
        out.freeze()
    }
}

/// Most POST streams of one session kept for resumption; older ones are forgotten.
const MAX_POST_STREAMS: usize = 16;

/// The streams of one session: the current GET stream and the recent POST streams.
#[derive(Debug)]
pub struct StreamSet {
    get: Mutex<Option<Arc<EventLog>>>,
    posts: Mutex<VecDeque<Arc<EventLog>>>,
    next_stream: AtomicU32,
    /// Events kept per stream (0 when the transport cannot resume).
    cap: usize,
    /// Events carry ids (Streamable HTTP).
    ids: bool,
    /// A reader's outbox, in events.
    outbox: usize,
}

impl StreamSet {
    /// Streams keeping `cap` events each (`ids` false: no ids, no replay) with readers'
    /// outboxes of `outbox` events.
    pub fn new(cap: usize, ids: bool, outbox: usize) -> StreamSet {
        let cap = if ids { cap } else { 0 };
        StreamSet {
            get: Mutex::new(None),
            posts: Mutex::new(VecDeque::new()),
            next_stream: AtomicU32::new(0),
            cap,
            ids,
            outbox,
        }
    }

    fn new_log(&self) -> Arc<EventLog> {
        Arc::new(EventLog::new(
            self.next_stream.fetch_add(1, Ordering::Relaxed),
            self.cap,
            self.ids,
        ))
    }

    /// Opens a new GET stream, replacing (and disconnecting) the previous one. Returns its log
    /// and the receiver its SSE body drains.
    pub fn open_get(&self) -> (Arc<EventLog>, mpsc::Receiver<Bytes>) {
        let log = self.new_log();
        let (_, rx) = log
            .attach(None, self.outbox)
            .expect("a new log has lost nothing");
        if let Some(old) = self.get.lock().expect("streams lock").replace(log.clone()) {
            old.disconnect();
        }
        (log, rx)
    }

    /// Opens the stream answering one POST request. Returns its log and the receiver its SSE
    /// body drains; the log is resumable only once passed to [`StreamSet::keep_post`].
    pub fn open_post(&self) -> (Arc<EventLog>, mpsc::Receiver<Bytes>) {
        let log = self.new_log();
        let (_, rx) = log
            .attach(None, self.outbox)
            .expect("a new log has lost nothing");
        (log, rx)
    }

    /// Keeps a POST stream's log for resumption, forgetting the oldest ones once they expire
    /// and, beyond the most recent 16, the oldest.
    pub fn keep_post(&self, log: Arc<EventLog>) {
        let mut posts = self.posts.lock().expect("streams lock");
        while posts.front().is_some_and(|l| l.expired()) {
            posts.pop_front();
        }
        if posts.len() == MAX_POST_STREAMS {
            posts.pop_front();
        }
        posts.push_back(log);
    }

    /// Reconnects to the stream `last_event_id` belongs to: the events after it, and the
    /// receiver of what follows. Errors: [`ResumeError`].
    pub fn resume(
        &self,
        last_event_id: &str,
    ) -> Result<(Vec<Bytes>, mpsc::Receiver<Bytes>), ResumeError> {
        let unknown = || ResumeError::Unknown(last_event_id.to_string());
        let (stream, seq) = parse_event_id(last_event_id).ok_or_else(unknown)?;
        let get = self
            .get
            .lock()
            .expect("streams lock")
            .clone()
            .filter(|l| l.stream() == stream);
        let log = match get {
            Some(log) => log,
            None => self
                .posts
                .lock()
                .expect("streams lock")
                .iter()
                .find(|l| l.stream() == stream)
                .cloned()
                .ok_or_else(unknown)?,
        };
        log.attach(Some(seq), self.outbox)
    }

    /// Offers an event to the GET stream.
    pub fn push_get(&self, event: &Bytes) -> Option<Push> {
        let log = self.get.lock().expect("streams lock").clone()?;
        Some(log.push(event))
    }

    /// True while a reader is connected to the GET stream.
    pub fn get_connected(&self) -> bool {
        self.get
            .lock()
            .expect("streams lock")
            .as_ref()
            .is_some_and(|l| l.has_reader())
    }

    /// Disconnects the GET stream's reader (the log stays for resumption).
    pub fn disconnect_get(&self) {
        if let Some(log) = self.get.lock().expect("streams lock").as_ref() {
            log.disconnect();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(s: &str) -> Bytes {
        Bytes::from(format!("event: message\ndata: {s}\n\n"))
    }

    #[test]
    fn numbers_events_and_replays_only_what_follows_the_last_id() {
        let log = EventLog::new(3, 10, true);
        let (_, mut rx) = log.attach(None, 8).unwrap();
        assert_eq!(log.push(&ev("a")), Push::Sent);
        assert_eq!(
            rx.try_recv().unwrap(),
            Bytes::from("id: 3-1\nevent: message\ndata: a\n\n")
        );
        drop(rx);
        assert_eq!(
            log.push(&ev("b")),
            Push::Kept,
            "the reader went away; kept for replay"
        );
        log.push(&ev("c"));
        let (replay, _rx) = log.attach(Some(1), 8).unwrap();
        assert_eq!(
            replay,
            vec![
                Bytes::from("id: 3-2\nevent: message\ndata: b\n\n"),
                Bytes::from("id: 3-3\nevent: message\ndata: c\n\n")
            ]
        );
        assert_eq!(parse_event_id("3-2"), Some((3, 2)));
        assert_eq!(parse_event_id("x"), None);
    }

    #[test]
    fn a_bounded_buffer_reports_lost_events() {
        let log = EventLog::new(1, 2, true);
        for s in ["a", "b", "c", "d"] {
            log.push(&ev(s));
        }
        assert!(matches!(
            log.attach(Some(1), 8),
            Err(ResumeError::Expired(_))
        ));
        let (replay, _) = log.attach(Some(2), 8).unwrap();
        assert_eq!(replay.len(), 2);
    }

    #[test]
    fn finished_streams_close_their_reader_and_full_outboxes_disconnect() {
        let log = EventLog::new(0, 4, true);
        let (_, mut rx) = log.attach(None, 1).unwrap();
        assert_eq!(log.push(&ev("1")), Push::Sent);
        assert_eq!(log.push(&ev("2")), Push::SlowConsumer);
        assert!(!log.has_reader());
        let (replay, mut rx2) = log.attach(Some(1), 4).unwrap();
        assert_eq!(replay.len(), 1);
        log.finish();
        assert!(rx2.try_recv().is_err());
        assert!(rx.try_recv().is_ok());
        let bare = EventLog::new(0, 0, false);
        assert_eq!(bare.push(&ev("x")), Push::Dropped);
        assert!(log
            .priming(1000)
            .starts_with(b"id: 0-0\nretry: 1000\ndata: \n\n"));
    }

    #[test]
    fn kept_bytes_are_bounded() {
        let log = EventLog::new(0, 1000, true);
        let big = Bytes::from(vec![b'x'; 1024 * 1024]);
        for _ in 0..10 {
            log.push(&big);
        }
        assert!(
            matches!(log.attach(Some(5), 4), Err(ResumeError::Expired(_))),
            "old events went to stay within the byte cap"
        );
        let (replay, _) = log.attach(Some(7), 4).unwrap();
        assert_eq!(replay.len(), 3, "at most {MAX_REPLAY_BYTES} bytes are kept");
        assert!(
            log.attach(Some(u64::MAX), 4).is_ok(),
            "a huge id does not overflow"
        );
    }

    #[test]
    fn a_session_resumes_the_stream_an_id_names() {
        let set = StreamSet::new(10, true, 8);
        let (get, get_rx) = set.open_get();
        let (post, post_rx) = set.open_post();
        drop((get_rx, post_rx));
        get.push(&ev("g"));
        post.push(&ev("p"));
        post.finish();
        assert!(
            matches!(
                set.resume(&format!("{}-0", post.stream())),
                Err(ResumeError::Unknown(_))
            ),
            "a POST stream answered without SSE is not resumable"
        );
        set.keep_post(post.clone());
        let (replay, mut rx) = set.resume(&format!("{}-0", post.stream())).unwrap();
        assert_eq!(replay.len(), 1);
        assert!(
            String::from_utf8_lossy(&replay[0]).contains("data: p"),
            "only the named stream is replayed"
        );
        assert!(
            rx.try_recv().is_err(),
            "a finished stream ends after the replay"
        );
        let (replay, _rx) = set.resume(&format!("{}-0", get.stream())).unwrap();
        assert!(String::from_utf8_lossy(&replay[0]).contains("data: g"));
        assert!(matches!(set.resume("99-0"), Err(ResumeError::Unknown(_))));
        let (new_get, _) = set.open_get();
        assert_ne!(new_get.stream(), get.stream());
        assert!(!get.has_reader(), "a new GET replaces the old one");
    }
}
