//! The open-files limit. Every connection, and every session with an open stream, holds a file
//! descriptor, and the common default soft limit (1,024) is far below what `--max-sessions`
//! (10,000 by default) needs; the hard limit is usually much higher. At start the bridge raises
//! its soft limit to the hard limit (setrlimit(2) `RLIMIT_NOFILE`), as servers commonly do.

use nix::sys::resource::{getrlimit, setrlimit, Resource};

/// Raises the soft `RLIMIT_NOFILE` to the hard limit. Returns `(before, after)` soft limits (in
/// descriptors). Errors: the `getrlimit`/`setrlimit` error (the limit is then unchanged).
pub fn raise_nofile() -> nix::Result<(u64, u64)> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    }
    Ok((soft, hard.max(soft)))
}
