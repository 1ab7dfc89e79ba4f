//! CPU time and resident memory of a process tree, read from `/proc` (Linux only).

use std::fs;

/// Clock ticks per second of `/proc/<pid>/stat` times (`USER_HZ`, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// One process: pid, parent pid, command name, CPU seconds (user + system), RSS in bytes.
struct Proc {
    pid: i32,
    ppid: i32,
    comm: String,
    cpu: f64,
    rss: u64,
}

fn read(pid: i32) -> Option<Proc> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat[open + 1..close].to_string();
    // Fields after the command: state ppid ... utime (12th) stime (13th).
    let rest: Vec<&str> = stat[close + 2..].split(' ').collect();
    let ppid = rest.get(1)?.parse().ok()?;
    let utime: u64 = rest.get(11)?.parse().ok()?;
    let stime: u64 = rest.get(12)?.parse().ok()?;
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    Some(Proc {
        pid,
        ppid,
        comm,
        cpu: (utime + stime) as f64 / TICKS_PER_SECOND,
        rss: rss_kb * 1024,
    })
}

/// `root` and all its descendants alive now.
fn tree(root: i32) -> Vec<Proc> {
    let all: Vec<Proc> = fs::read_dir("/proc")
        .map(|dir| {
            dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .filter_map(read)
                .collect()
        })
        .unwrap_or_default();
    let mut keep = vec![root];
    let mut i = 0;
    while i < keep.len() {
        let parent = keep[i];
        keep.extend(all.iter().filter(|p| p.ppid == parent).map(|p| p.pid));
        i += 1;
    }
    all.into_iter().filter(|p| keep.contains(&p.pid)).collect()
}

/// Resource use of a process tree, split into the proxy's processes and the wrapped children.
#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    /// CPU seconds of the processes that are not the child.
    pub proxy_cpu: f64,
    /// RSS bytes of the processes that are not the child.
    pub proxy_rss: u64,
    /// RSS bytes of the whole tree, children included.
    pub tree_rss: u64,
    /// Number of child processes in the tree.
    pub children: usize,
}

/// Reads the tree under `root`; processes whose command name is `child_comm` count as the child.
pub fn usage(root: i32, child_comm: &str) -> Usage {
    let mut u = Usage::default();
    for p in tree(root) {
        u.tree_rss += p.rss;
        if p.comm == child_comm {
            u.children += 1;
        } else {
            u.proxy_cpu += p.cpu;
            u.proxy_rss += p.rss;
        }
    }
    u
}
