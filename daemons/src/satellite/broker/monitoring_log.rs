//! The monitoring log file: Nagios' `nagios.log`, one `[unix seconds] LINE` per event
//! (`HOST ALERT`, `SERVICE ALERT`, `SERVICE NOTIFICATION`, `EXTERNAL COMMAND`,
//! `CURRENT HOST STATE` / `CURRENT SERVICE STATE` whenever a scheduler's full state arrives, at
//! start and after a takeover).
//!
//! Where (decided here, as Shinken's `simple-log` broker module did it):
//! 1. a module of the broker's `modules` of type `simple_log` (or `simple-log`) with a `path`:
//!    that file (a relative path is taken from the main configuration file's directory);
//! 2. else `$SHINKEN_STATE_DIR/<broker name>-monitoring.log` when that variable is set;
//! 3. else `state/<broker name>-monitoring.log` beside the main configuration file.
//!
//! The directory is created if needed and the file opened in append mode. Lines are written as
//! they come, without an fsync per line (the OS flushes them; a crash may lose the last ones).
//! A failure to open or write is logged once per change of state; the broker keeps serving and
//! tries to open the file again on the next lines.

use shinken_config::daemons::{DaemonDef, Topology};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use tracing::{error, info};

/// The module type that names the file.
pub const MODULE_TYPE: &str = "simple_log";

/// Where broker `def` writes its monitoring log (see the module's documentation).
pub fn path_for(def: &DaemonDef, topology: &Topology, main_file: &Path) -> PathBuf {
    let base = if main_file.is_dir() {
        main_file.to_path_buf()
    } else {
        main_file.parent().map(Path::to_path_buf).unwrap_or_default()
    };
    let from_module = def
        .modules
        .iter()
        .filter_map(|m| topology.module(m))
        .find(|m| m.is_type(MODULE_TYPE))
        .and_then(|m| m.params.get("path"))
        .filter(|p| !p.trim().is_empty());
    if let Some(p) = from_module {
        return base.join(p.trim());
    }
    let file = format!("{}-monitoring.log", def.name);
    match std::env::var_os("SHINKEN_STATE_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir).join(file),
        None => base.join("state").join(file),
    }
}

/// The open log file.
#[derive(Debug)]
pub struct MonitoringLog {
    path: PathBuf,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    file: Option<File>,
    failing: bool,
    lines: u64,
}

impl MonitoringLog {
    /// Opens (creates) `path` for appending; a failure is logged and retried on the next write.
    pub fn open(path: PathBuf) -> MonitoringLog {
        let log = MonitoringLog {
            path,
            state: Mutex::new(State::default()),
        };
        let mut st = log.lock();
        log.ensure_open(&mut st);
        if st.file.is_some() {
            info!("Monitoring log: {}", log.path.display());
        }
        drop(st);
        log
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Lines written so far.
    pub fn lines(&self) -> u64 {
        self.lock().lines
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn ensure_open(&self, st: &mut State) {
        if st.file.is_some() {
            return;
        }
        let opened = self
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|_| File::options().create(true).append(true).open(&self.path));
        match opened {
            Ok(f) => {
                if st.failing {
                    info!("The monitoring log {} is writable again", self.path.display());
                }
                st.failing = false;
                st.file = Some(f);
            }
            Err(e) => self.failed(st, &e),
        }
    }

    fn failed(&self, st: &mut State, e: &std::io::Error) {
        if !st.failing {
            error!("Cannot write the monitoring log {}: {e}", self.path.display());
        }
        st.failing = true;
        st.file = None;
    }

    /// Appends `lines`, one per line.
    pub fn append(&self, lines: &[String]) {
        if lines.is_empty() {
            return;
        }
        let mut st = self.lock();
        self.ensure_open(&mut st);
        let mut text = String::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
        for l in lines {
            // One event, one line.
            text.push_str(&l.replace(['\n', '\r'], " "));
            text.push('\n');
        }
        let Some(f) = st.file.as_mut() else {
            return;
        };
        match f.write_all(text.as_bytes()) {
            Ok(()) => st.lines += lines.len() as u64,
            Err(e) => self.failed(&mut st, &e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shinken_config::daemons::ModuleDef;
    use shinken_testkit::TempDir;

    fn broker(modules: &[&str]) -> DaemonDef {
        let tmp = TempDir::new("shinken-monitoring-log-def").unwrap();
        let main = tmp.path().join("shinken.cfg");
        std::fs::write(&main, "define broker {\n broker_name b-1\n address 127.0.0.1\n}\n").unwrap();
        let cfg = shinken_config::load(&main).unwrap();
        let mut def = cfg.topology.by_role(shinken_config::daemons::Role::Broker).next().unwrap().clone();
        def.modules = modules.iter().map(|m| m.to_string()).collect();
        def
    }

    #[test]
    fn the_path_comes_from_a_simple_log_module_else_the_default() {
        let topo = Topology {
            modules: vec![ModuleDef {
                name: "log".into(),
                module_type: "simple-log".into(),
                params: [("path".to_string(), "var/nagios.log".to_string())].into(),
                imported_from: String::new(),
            }],
            ..Topology::default()
        };
        let main = Path::new("/etc/shinken/shinken.cfg");
        assert_eq!(
            path_for(&broker(&["log"]), &topo, main),
            PathBuf::from("/etc/shinken/var/nagios.log")
        );
        let default = path_for(&broker(&[]), &topo, main);
        match std::env::var_os("SHINKEN_STATE_DIR").filter(|d| !d.is_empty()) {
            Some(d) => assert_eq!(default, PathBuf::from(d).join("b-1-monitoring.log")),
            None => assert_eq!(default, PathBuf::from("/etc/shinken/state/b-1-monitoring.log")),
        }
    }

    #[test]
    fn lines_are_appended() {
        let tmp = TempDir::new("shinken-monitoring-log").unwrap();
        let path = tmp.path().join("sub").join("m.log");
        let log = MonitoringLog::open(path.clone());
        log.append(&["[1] SERVICE ALERT: h;s;CRITICAL;SOFT;1;a\nb".to_string()]);
        drop(log);
        let log = MonitoringLog::open(path.clone());
        log.append(&["[2] HOST ALERT: h;DOWN;SOFT;1;x".to_string()]);
        assert_eq!(log.lines(), 1);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "[1] SERVICE ALERT: h;s;CRITICAL;SOFT;1;a b\n[2] HOST ALERT: h;DOWN;SOFT;1;x\n"
        );
    }
}
