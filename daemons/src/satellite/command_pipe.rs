//! The command pipe, as the course's `CommandFile` module (semantics reference, 1.5):
//!
//! ```text
//! define module {
//!     module_name   CommandFile
//!     module_type   named_pipe
//!     command_file  /var/lib/shinken/nagios.cmd
//! }
//! ```
//!
//! listed in the receiver's `modules`. The receiver creates the FIFO (mode 0660) when the path
//! does not exist, keeps an existing FIFO as it is (a restart reuses it; removing it by hand
//! is fine too: it is created again at the next start), and refuses to touch a path that is
//! not a FIFO (an error in the log, no pipe). A relative `command_file` is taken from the main
//! configuration file's directory.
//!
//! The reader opens the FIFO for reading and writing, so that it never sees an end of file when
//! the last writer closes (Nagios's trick: writers come and go, `echo ... > nagios.cmd`); should
//! the read still end or fail, it opens the FIFO again after a short pause. Every second it checks
//! that the path is still the FIFO it opened: removed (or replaced by a FIFO made by someone
//! else), it makes it again if needed and reopens it. A regular file put in its place is left
//! alone (a warning, no pipe until it is removed). Each complete line is
//! routed as an HTTP command is ([`Receiver::run_lines`]), its outcome only logged. A line longer
//! than [`MAX_LINE`] is dropped with a warning. The FIFO is left in place when the receiver stops.

use super::receiver::Receiver;
use shinken_config::daemons::{DaemonDef, Topology};
use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::sync::watch;
use tracing::{error, info, warn};

/// The longest line taken from the pipe.
pub const MAX_LINE: usize = 64 * 1024;

/// The module types read as a command pipe.
const TYPES: [&str; 2] = ["named_pipe", "command_file"];

/// The command files of `def`'s `named_pipe` modules (relative ones under `base`).
pub fn command_files(def: &DaemonDef, topology: &Topology, base: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for m in def.modules.iter().filter_map(|n| topology.module(n)) {
        if !TYPES.iter().any(|t| m.is_type(t)) {
            continue;
        }
        match m.params.get("command_file").map(|s| s.trim()).filter(|s| !s.is_empty()) {
            Some(p) => out.push(base.join(p)),
            None => warn!("Module {} ({}): no command_file: no command pipe", m.name, m.module_type),
        }
    }
    out
}

/// Creates the FIFO at `path` if nothing is there (parent directories too); an existing FIFO is
/// kept; anything else is an error.
pub fn ensure_fifo(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_fifo() => return Ok(()),
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a named pipe", path.display()),
            ));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: mkfifo reads a NUL-terminated path we own.
    if unsafe { libc::mkfifo(c.as_ptr(), 0o660) } != 0 {
        let e = io::Error::last_os_error();
        // Created by someone else meanwhile: fine if it is a FIFO.
        if e.kind() == io::ErrorKind::AlreadyExists && std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_fifo()) {
            return Ok(());
        }
        return Err(e);
    }
    // The umask may have taken write bits away: the pipe is for writers.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    Ok(())
}

/// Splits complete lines off `buf` (without their `\n` or `\r\n`); drops an over-long
/// unterminated line. Returns the lines and how many bytes were dropped.
pub fn take_lines(buf: &mut Vec<u8>) -> (Vec<String>, usize) {
    let mut lines = Vec::new();
    let mut dropped = 0;
    while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
        let mut line: Vec<u8> = buf.drain(..=pos).collect();
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        if line.len() > MAX_LINE {
            dropped += line.len();
            continue;
        }
        let text = String::from_utf8_lossy(&line).into_owned();
        if !text.trim().is_empty() {
            lines.push(text);
        }
    }
    if buf.len() > MAX_LINE {
        dropped += buf.len();
        buf.clear();
    }
    (lines, dropped)
}

/// Starts reading `path` (created if absent) for `receiver`; false (and an error logged) when
/// the pipe cannot be made.
pub fn start(receiver: &Arc<Receiver>, path: PathBuf) -> bool {
    if let Err(e) = ensure_fifo(&path) {
        error!("[{}] Cannot use {} as the command pipe: {e}", receiver.name(), path.display());
        return false;
    }
    info!(
        "[{}] Reading external commands from the named pipe {}",
        receiver.name(),
        path.display()
    );
    let r = receiver.clone();
    let stop = receiver.stop_signal();
    receiver.keep_pipe(tokio::spawn(read_loop(r, path, stop)));
    true
}

/// How often the reader checks that the path is still the FIFO it opened.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// The (device, inode) of `path`, if it is a FIFO.
fn inode(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path)
        .ok()
        .filter(|m| m.file_type().is_fifo())
        .map(|m| (m.dev(), m.ino()))
}

async fn read_loop(r: Arc<Receiver>, path: PathBuf, mut stop: watch::Receiver<bool>) {
    let mut failing = false;
    loop {
        if *stop.borrow() {
            return;
        }
        match tokio::net::unix::pipe::OpenOptions::new().read_write(true).open_receiver(&path) {
            Ok(mut pipe) => {
                if failing {
                    info!("[{}] Command pipe {} open again", r.name(), path.display());
                    failing = false;
                }
                // The FIFO opened: if the path is removed or replaced, writers no longer reach it.
                let opened = inode(&path);
                let mut watch = tokio::time::interval(WATCH_EVERY);
                let mut buf = Vec::new();
                let mut chunk = vec![0u8; 8192];
                loop {
                    let n = tokio::select! {
                        n = pipe.read(&mut chunk) => n,
                        _ = stop.changed() => return,
                        _ = watch.tick() => {
                            if inode(&path) == opened {
                                continue;
                            }
                            warn!("[{}] Command pipe {} was removed or replaced: making it again", r.name(), path.display());
                            if let Err(e) = ensure_fifo(&path) {
                                warn!("[{}] Cannot create the command pipe {}: {e}", r.name(), path.display());
                            }
                            break;
                        }
                    };
                    match n {
                        Ok(0) => {
                            info!("[{}] Command pipe {}: end of file, opening it again", r.name(), path.display());
                            break;
                        }
                        Ok(n) => {
                            buf.extend_from_slice(&chunk[..n]);
                            let (lines, dropped) = take_lines(&mut buf);
                            if dropped > 0 {
                                warn!(
                                    "[{}] Command pipe {}: a line longer than {MAX_LINE} bytes dropped",
                                    r.name(),
                                    path.display()
                                );
                            }
                            if !lines.is_empty() {
                                r.run_lines(&lines).await;
                            }
                        }
                        Err(e) => {
                            warn!("[{}] Command pipe {}: read failed: {e}", r.name(), path.display());
                            break;
                        }
                    }
                }
            }
            Err(e) => {
                // Gone (removed by hand)? Made again; anything else in its place is left alone.
                let made = ensure_fifo(&path);
                if !failing {
                    warn!("[{}] Cannot open the command pipe {}: {e}", r.name(), path.display());
                    if let Err(e) = made {
                        warn!("[{}] Cannot create the command pipe {}: {e}", r.name(), path.display());
                    }
                    failing = true;
                }
            }
        }
        if super::link::sleep_or_stop(Duration::from_millis(500), &mut stop).await {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_and_partial_ones_kept() {
        let mut buf = b"A;1\r\nB;2\n\nC;".to_vec();
        let (lines, dropped) = take_lines(&mut buf);
        assert_eq!(lines, ["A;1", "B;2"]);
        assert_eq!(dropped, 0);
        assert_eq!(buf, b"C;");
        buf.extend_from_slice(b"3\n");
        assert_eq!(take_lines(&mut buf).0, ["C;3"]);
        assert!(buf.is_empty());
    }

    #[test]
    fn over_long_lines_are_dropped() {
        let mut buf = vec![b'x'; MAX_LINE + 1];
        let (lines, dropped) = take_lines(&mut buf);
        assert!(lines.is_empty() && dropped == MAX_LINE + 1 && buf.is_empty());
        let mut buf = vec![b'y'; MAX_LINE + 1];
        buf.extend_from_slice(b"\nOK;1\n");
        let (lines, dropped) = take_lines(&mut buf);
        assert_eq!(lines, ["OK;1"]);
        assert_eq!(dropped, MAX_LINE + 1);
    }

    #[test]
    fn a_fifo_is_made_once_and_other_files_are_left_alone() {
        let dir = std::env::temp_dir().join(format!("shinken-pipe-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let fifo = dir.join("sub/nagios.cmd");
        ensure_fifo(&fifo).unwrap();
        assert!(std::fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
        ensure_fifo(&fifo).unwrap();
        let plain = dir.join("plain.cmd");
        std::fs::write(&plain, "keep me").unwrap();
        assert!(ensure_fifo(&plain).is_err());
        assert_eq!(std::fs::read_to_string(&plain).unwrap(), "keep me");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
