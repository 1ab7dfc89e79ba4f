//! Sealed session ids, so that replicas behind a header-hashing load balancer can hand a new
//! session over (README, "Several replicas" and "Deploy"; DESIGN.md has no multi-replica design
//! yet, and PROTOCOL.md section 2.5 only requires ids to be visible ASCII and unguessable).
//!
//! Why: a load balancer that hashes `Mcp-Session-Id` (ingress-nginx `upstream-hash-by`) sends an
//! `initialize`, which has no session id yet, to one replica, and every later request of the
//! session, which has one, to the replica its id hashes to: usually another. With a secret
//! shared by every replica (`MCP_BRIDGE_SESSION_SECRET`), the replica answering `initialize`
//! seals what the session was opened with into its id; the replica receiving the follow-ups
//! adopts the session from the id alone, and keeps it from then on.
//!
//! Layout of a sealed id, as 76 lowercase hex characters (visible ASCII, PROTOCOL.md section
//! 2.5): 16 random bytes (the operating system's CSPRNG), 1 byte code of the negotiated version
//! ([`VERSION_CODES`], append-only, so replicas of different releases agree), 1 byte of
//! [`ClientCaps`] bits, 4 bytes issue time
//! (seconds since the Unix epoch, big-endian), then the first 16 bytes of
//! HMAC-SHA256(key, the 22 bytes before || the principal, 8 bytes big-endian). The principal is
//! in the MAC, not in the id: only the principal that opened the session can have it adopted.
//!
//! Replicas' clocks must agree within a few seconds (NTP): a replica whose clock is d seconds
//! ahead of the issuing one has a window of 60 - d seconds.
//!
//! Invariants: an id is adoptable only within [`ADOPT_WINDOW_SECS`] of its issue (the hand-over
//! happens at the session's first follow-up, right after `initialize`; a session lost later,
//! e.g. with its replica, gets 404 and the client opens a new one, as the spec prescribes); an
//! id that ended on this replica (DELETE, idle expiry) is never adopted here again.

use super::ClientCaps;
use crate::auth::Principal;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::Mutex;

type HmacSha256 = Hmac<Sha256>;

const NONCE: usize = 16;
const META: usize = 6;
const TAG: usize = 16;
const RAW: usize = NONCE + META + TAG;

/// Length of a sealed session id in characters.
pub const SEALED_LEN: usize = RAW * 2;

/// How long after `initialize` another replica may adopt a session, in seconds (an issue time
/// this far in the future is accepted too).
pub const ADOPT_WINDOW_SECS: u64 = 60;

/// The code of each protocol version in a sealed id. Append-only: a code never changes meaning,
/// so that replicas running different releases read each other's ids alike.
pub const VERSION_CODES: [(u8, &str); 4] = [
    (1, "2024-11-05"),
    (2, "2025-03-26"),
    (3, "2025-06-18"),
    (4, "2025-11-25"),
];

/// The shortest secret accepted, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;

/// The environment variable holding the shared secret (environment only, so that it never shows
/// in the process list; removed from the child's environment).
pub const SECRET_ENV: &str = "MCP_BRIDGE_SESSION_SECRET";

/// An HMAC-SHA256 key derived from `secret` for one `purpose` (a fixed label), so that one secret
/// serves several uses without one use's MACs being valid for another.
pub(crate) fn derive(secret: &[u8], purpose: &str) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(purpose.as_bytes());
    let key = mac.finalize().into_bytes();
    HmacSha256::new_from_slice(&key).expect("HMAC takes keys of any length")
}

/// What an adoptable id says about its session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sealed {
    /// The protocol version negotiated in the session's `initialize`.
    pub version: &'static str,
    /// The capabilities the client declared there.
    pub caps: ClientCaps,
}

/// Why an id cannot be adopted (for the debug log; the client gets a plain 404 either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotAdoptable {
    /// Not 76 lowercase hex characters: a random id, or garbage.
    #[error("not a sealed session id")]
    NotSealed,
    /// The MAC does not match: another secret, a forged id, or another principal's session.
    #[error("the seal does not match (another secret or another principal)")]
    BadSeal,
    /// Issued more than [`ADOPT_WINDOW_SECS`] ago (or ahead).
    #[error("issued outside the adoption window")]
    Stale,
    /// The session already ended on this replica.
    #[error("the session ended here")]
    Ended,
}

/// Ids ended on this replica while still adoptable.
#[derive(Default)]
struct Ended {
    /// Id -> issue time (seconds).
    ids: HashMap<String, u64>,
    /// Size at which the next pass drops the entries past the window (amortized pruning).
    prune_at: usize,
}

/// Mints and opens sealed session ids with one shared secret; remembers the ids that ended here.
pub struct Sealer {
    key: HmacSha256,
    ended: Mutex<Ended>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer([redacted])")
    }
}

impl Sealer {
    /// A sealer keyed by `secret` (at least [`MIN_SECRET_BYTES`] bytes; the caller checks).
    pub fn new(secret: &[u8]) -> Sealer {
        Sealer {
            key: derive(secret, "mcp-bridge session id v1"),
            ended: Mutex::new(Ended::default()),
        }
    }

    /// A new sealed id for a session opened at `now` (seconds since the Unix epoch) by
    /// `principal` with `version` (an entry of [`crate::protocol::SUPPORTED_VERSIONS`]) and
    /// `caps`. Returns [`SEALED_LEN`] lowercase hex characters.
    pub fn mint(&self, version: &str, caps: ClientCaps, principal: Principal, now: u64) -> String {
        let mut raw = [0u8; RAW];
        getrandom::fill(&mut raw[..NONCE]).expect("the operating system CSPRNG is available");
        raw[NONCE] = VERSION_CODES
            .iter()
            .find(|(_, v)| *v == version)
            .expect("every supported version has a code")
            .0;
        raw[NONCE + 1] = caps_bits(caps);
        raw[NONCE + 2..NONCE + META].copy_from_slice(&(now as u32).to_be_bytes());
        let tag = self
            .mac(&raw[..NONCE + META], principal)
            .finalize()
            .into_bytes();
        raw[NONCE + META..].copy_from_slice(&tag[..TAG]);
        hex(&raw)
    }

    /// What `id` says about its session, if `principal` may have it adopted at `now` (seconds
    /// since the Unix epoch). Errors: see [`NotAdoptable`].
    pub fn open(&self, id: &str, principal: Principal, now: u64) -> Result<Sealed, NotAdoptable> {
        let raw = unhex(id).ok_or(NotAdoptable::NotSealed)?;
        let (body, tag) = raw.split_at(NONCE + META);
        self.mac(body, principal)
            .verify_truncated_left(tag)
            .map_err(|_| NotAdoptable::BadSeal)?;
        let issued = u64::from(u32::from_be_bytes(
            body[NONCE + 2..].try_into().expect("4 bytes"),
        ));
        if now.abs_diff(issued) > ADOPT_WINDOW_SECS {
            return Err(NotAdoptable::Stale);
        }
        if self.is_buried(id) {
            return Err(NotAdoptable::Ended);
        }
        let version = VERSION_CODES
            .iter()
            .find(|(code, _)| *code == body[NONCE])
            .map(|(_, v)| *v)
            .ok_or(NotAdoptable::BadSeal)?;
        Ok(Sealed {
            version,
            caps: caps_from_bits(body[NONCE + 1]),
        })
    }

    /// Remembers that the session `id` ended here at `now`, so that it is not adopted again.
    /// Only ids still inside the adoption window are kept; entries past it are dropped whenever
    /// the set has doubled since the last pass (amortized constant time per call).
    pub fn bury(&self, id: &str, now: u64) {
        let Some(raw) = unhex(id) else { return };
        let issued = u64::from(u32::from_be_bytes(
            raw[NONCE + 2..NONCE + META].try_into().expect("4 bytes"),
        ));
        let mut ended = self.ended.lock().expect("ended lock");
        if now.abs_diff(issued) <= ADOPT_WINDOW_SECS {
            ended.ids.insert(id.to_string(), issued);
        }
        if ended.ids.len() >= ended.prune_at {
            ended
                .ids
                .retain(|_, t| now.abs_diff(*t) <= ADOPT_WINDOW_SECS);
            ended.prune_at = (ended.ids.len() * 2).max(64);
        }
    }

    /// True when the session `id` ended on this replica (see [`Sealer::bury`]).
    pub fn is_buried(&self, id: &str) -> bool {
        self.ended.lock().expect("ended lock").ids.contains_key(id)
    }

    /// The MAC over an id's first 22 bytes and the principal, ready to finalize or verify.
    fn mac(&self, body: &[u8], principal: Principal) -> HmacSha256 {
        let mut mac = self.key.clone();
        mac.update(body);
        mac.update(&principal.0.to_be_bytes());
        mac
    }
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn caps_bits(c: ClientCaps) -> u8 {
    u8::from(c.sampling)
        | u8::from(c.elicitation_form) << 1
        | u8::from(c.elicitation_url) << 2
        | u8::from(c.roots) << 3
}

fn caps_from_bits(b: u8) -> ClientCaps {
    ClientCaps {
        sampling: b & 1 != 0,
        elicitation_form: b & 2 != 0,
        elicitation_url: b & 4 != 0,
        roots: b & 8 != 0,
    }
}

fn hex(raw: &[u8]) -> String {
    use std::fmt::Write;
    raw.iter()
        .fold(String::with_capacity(raw.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The bytes of a [`SEALED_LEN`]-character lowercase hex id; `None` for anything else.
fn unhex(id: &str) -> Option<[u8; RAW]> {
    let bytes = id.as_bytes();
    if bytes.len() != SEALED_LEN {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut raw = [0u8; RAW];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        raw[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;
    const CAPS: ClientCaps = ClientCaps {
        sampling: true,
        elicitation_form: false,
        elicitation_url: true,
        roots: true,
    };

    fn sealer(secret: &str) -> Sealer {
        Sealer::new(secret.as_bytes())
    }

    #[test]
    fn version_codes_cover_every_supported_version_once() {
        for v in crate::protocol::SUPPORTED_VERSIONS {
            assert_eq!(
                VERSION_CODES.iter().filter(|(_, c)| *c == v).count(),
                1,
                "{v}"
            );
        }
        let a = sealer("0123456789abcdef0123456789abcdef");
        for v in crate::protocol::SUPPORTED_VERSIONS {
            let id = a.mint(v, CAPS, Principal(2), NOW);
            assert_eq!(a.open(&id, Principal(2), NOW).unwrap().version, v);
        }
    }

    #[test]
    fn another_replica_with_the_same_secret_reads_back_version_and_capabilities() {
        let a = sealer("0123456789abcdef0123456789abcdef");
        let b = sealer("0123456789abcdef0123456789abcdef");
        let id = a.mint("2025-06-18", CAPS, Principal(7), NOW);
        assert_eq!(id.len(), SEALED_LEN);
        assert!(id
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        let opened = b.open(&id, Principal(7), NOW + 3).unwrap();
        assert_eq!(
            opened,
            Sealed {
                version: "2025-06-18",
                caps: CAPS
            }
        );
        let other = a.mint("2025-11-25", ClientCaps::default(), Principal(0), NOW);
        assert_ne!(other[..32], id[..32], "ids differ in their random part");
        assert_eq!(
            b.open(&other, Principal(0), NOW).unwrap().caps,
            ClientCaps::default()
        );
    }

    #[test]
    fn wrong_secret_principal_time_or_any_flipped_character_is_refused() {
        let a = sealer("0123456789abcdef0123456789abcdef");
        let id = a.mint("2025-06-18", CAPS, Principal(7), NOW);
        let b = sealer("another secret, also 32 bytes long");
        assert_eq!(b.open(&id, Principal(7), NOW), Err(NotAdoptable::BadSeal));
        assert_eq!(a.open(&id, Principal(8), NOW), Err(NotAdoptable::BadSeal));
        assert_eq!(a.open(&id, Principal(0), NOW), Err(NotAdoptable::BadSeal));
        let late = NOW + ADOPT_WINDOW_SECS + 1;
        assert_eq!(a.open(&id, Principal(7), late), Err(NotAdoptable::Stale));
        let early = NOW - ADOPT_WINDOW_SECS - 1;
        assert_eq!(a.open(&id, Principal(7), early), Err(NotAdoptable::Stale));
        assert!(a.open(&id, Principal(7), NOW + ADOPT_WINDOW_SECS).is_ok());
        for i in 0..id.len() {
            let mut forged = id.clone().into_bytes();
            forged[i] = if forged[i] == b'0' { b'1' } else { b'0' };
            let forged = String::from_utf8(forged).unwrap();
            assert!(a.open(&forged, Principal(7), NOW).is_err(), "{forged}");
        }
        for bad in ["", "0123", &id.to_uppercase(), &id[1..], &format!("{id}0")] {
            assert_eq!(a.open(bad, Principal(7), NOW), Err(NotAdoptable::NotSealed));
        }
    }

    #[test]
    fn an_ended_id_is_not_adopted_again_and_old_burials_are_forgotten() {
        let a = sealer("0123456789abcdef0123456789abcdef");
        let id = a.mint("2025-06-18", CAPS, Principal(1), NOW);
        a.bury(&id, NOW + 1);
        assert_eq!(a.open(&id, Principal(1), NOW + 2), Err(NotAdoptable::Ended));
        a.bury("not sealed", NOW);
        assert!(!a.is_buried("not sealed"));
        // 100 more ended sessions, 200 s later: the pass at 64 entries drops the stale one.
        for _ in 0..100 {
            let later = a.mint("2025-06-18", CAPS, Principal(1), NOW + 200);
            a.bury(&later, NOW + 200);
        }
        assert!(!a.is_buried(&id), "the stale entry is pruned");
        assert!(a.ended.lock().unwrap().ids.len() <= 100);
    }
}
