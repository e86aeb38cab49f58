//! Running a child process while measuring its wall time and peak resident set size.

use std::io;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What one run of a child cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Measured {
    /// The exit code (`None` when killed by a signal).
    pub code: Option<i32>,
    /// Wall-clock time from spawn to reap.
    pub wall: Duration,
    /// Peak resident set size of the child, in KiB (`ru_maxrss` from `wait4`).
    pub max_rss_kib: u64,
}

/// Runs `cmd` with its output discarded and reaps it with `wait4` for its resource usage.
pub fn run(cmd: &mut Command) -> io::Result<Measured> {
    let start = Instant::now();
    let child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn()?;
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `pid` is our own un-reaped child (std's `Child` is never waited on here);
        // `status` and `usage` are valid for writes.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            break;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    let wall = start.elapsed();
    let code = if libc::WIFEXITED(status) {
        Some(libc::WEXITSTATUS(status))
    } else {
        None
    };
    Ok(Measured {
        code,
        wall,
        max_rss_kib: u64::try_from(usage.ru_maxrss).unwrap_or(0),
    })
}

/// The median of a non-empty list of durations.
pub fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_a_child() {
        let m = run(Command::new("sh").args(["-c", "exit 3"])).unwrap();
        assert_eq!(m.code, Some(3));
        assert!(m.max_rss_kib > 0);
        let m = run(&mut Command::new("true")).unwrap();
        assert_eq!(m.code, Some(0));
    }

    #[test]
    fn median_of_odd_list() {
        let ms = Duration::from_millis;
        assert_eq!(median(vec![ms(5), ms(1), ms(3)]), ms(3));
    }
}
