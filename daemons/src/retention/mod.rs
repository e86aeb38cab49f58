//! Retention: the last state of every host and service, kept where a restarted or spare
//! scheduler finds it (semantics §4), fenced by the epoch of the part that wrote it.
//!
//! - [`RetentionStore`]: the one trait both backends implement: load records by key, save
//!   records conditionally on the epoch (a record stored with a newer epoch is never
//!   overwritten: a stale master cannot undo its spare's work), and the arbiters' epoch counter;
//! - [`file`]: one JSON file, written whole to a temporary file and renamed (the default on one
//!   machine), the epoch counter in `<file>.epoch` beside it;
//! - [`mongo`]: MongoDB through the official driver, declared as in Shinken (`define module {
//!   module_type mongodb_retention; uri ...; database ... }` listed in the scheduler's
//!   `modules`); conditional upserts do the fencing;
//! - [`writer`]: the write-behind: the engine hands over the records it changed and goes on; a
//!   background task batches them, retries with backoff while the store fails, and reports.
//!
//! [`open`] picks the backend from the scheduler's modules; [`Store`] is the dynamic choice.

pub mod file;
pub mod mongo;
pub mod writer;

use crate::scheduler::state::ItemState;
use serde::{Deserialize, Serialize};
use shinken_config::daemons::{DaemonDef, ModuleDef, Topology};
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};

pub use file::FileStore;
pub use mongo::MongoStore;
pub use writer::{Writer, WriterStatus};

/// The module types that select MongoDB (`_` and `-` alike): the 2014 name and the 2020 one.
pub const MONGODB_TYPES: [&str; 2] = ["mongodb-retention", "retention-mongodb"];

/// The saved state of one host or service.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// `host` for a host, `host/service` for a service (see [`host_key`], [`service_key`]).
    pub key: String,
    /// The epoch of the part whose scheduler wrote it.
    pub epoch: u64,
    pub state: ItemState,
    /// Unix seconds of the save.
    pub saved_at: f64,
}

/// The key of a host's record.
pub fn host_key(host: &str) -> String {
    host.to_string()
}

/// The key of a service's record: `host/service` (a host name has no `/`; a service
/// description may, so the first `/` separates them).
pub fn service_key(host: &str, service: &str) -> String {
    format!("{host}/{service}")
}

/// Whether a key names a service (else a host).
pub fn is_service_key(key: &str) -> bool {
    key.contains('/')
}

/// What a conditional save did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SaveOutcome {
    /// Records written (inserted or replaced).
    pub written: usize,
    /// Keys not written: the store holds them with a newer epoch.
    pub refused_stale: Vec<String>,
}

/// A retention store failed (unreachable, timed out, unreadable, misconfigured).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error(pub String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl From<String> for Error {
    fn from(s: String) -> Error {
        Error(s)
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// A place retention records live. Every call is bounded in time by the backend (a store that
/// does not answer is an error, not a hang).
pub trait RetentionStore: Send + Sync {
    /// The records found for `keys` (missing keys are simply absent).
    fn load(&self, keys: &[String]) -> impl Future<Output = Result<HashMap<String, Record>>> + Send;

    /// Writes `records` with `epoch` (their own `epoch` field is replaced), except those stored
    /// with a newer epoch: these are reported in [`SaveOutcome::refused_stale`], unchanged.
    fn save(&self, records: Vec<Record>, epoch: u64) -> impl Future<Output = Result<SaveOutcome>> + Send;

    /// The arbiters' epoch counter: sets it to `max(value + 1, at_least)` atomically and returns
    /// it. Two calls never return the same value; the counter never goes down.
    fn bump_epoch(&self, at_least: u64) -> impl Future<Output = Result<u64>> + Send;

    /// The counter's value (0 when never bumped).
    fn current_epoch(&self) -> impl Future<Output = Result<u64>> + Send;

    /// For logs and status: `file /var/lib/shinken/retention.json`, `mongodb host:port/db`.
    fn describe(&self) -> String;
}

/// The backend chosen by the configuration.
pub enum Store {
    File(FileStore),
    Mongo(MongoStore),
}

impl RetentionStore for Store {
    async fn load(&self, keys: &[String]) -> Result<HashMap<String, Record>> {
        match self {
            Store::File(s) => s.load(keys).await,
            Store::Mongo(s) => s.load(keys).await,
        }
    }

    async fn save(&self, records: Vec<Record>, epoch: u64) -> Result<SaveOutcome> {
        match self {
            Store::File(s) => s.save(records, epoch).await,
            Store::Mongo(s) => s.save(records, epoch).await,
        }
    }

    async fn bump_epoch(&self, at_least: u64) -> Result<u64> {
        match self {
            Store::File(s) => s.bump_epoch(at_least).await,
            Store::Mongo(s) => s.bump_epoch(at_least).await,
        }
    }

    async fn current_epoch(&self) -> Result<u64> {
        match self {
            Store::File(s) => s.current_epoch().await,
            Store::Mongo(s) => s.current_epoch().await,
        }
    }

    fn describe(&self) -> String {
        match self {
            Store::File(s) => s.describe(),
            Store::Mongo(s) => s.describe(),
        }
    }
}

/// Whether a module definition selects MongoDB retention.
pub fn is_mongodb_module(m: &ModuleDef) -> bool {
    MONGODB_TYPES.iter().any(|t| m.is_type(t))
}

/// The retention module a scheduler lists, if any (the first MongoDB retention module of its
/// `modules`).
pub fn scheduler_module<'a>(topology: &'a Topology, scheduler: &DaemonDef) -> Option<&'a ModuleDef> {
    scheduler
        .modules
        .iter()
        .filter_map(|name| topology.module(name))
        .find(|m| is_mongodb_module(m))
}

/// The retention module the arbiters keep the epoch counter in: the first MongoDB retention
/// module listed by a scheduler (in definition order), else the first one defined at all.
pub fn arbiter_module(topology: &Topology) -> Option<&ModuleDef> {
    topology
        .daemons
        .iter()
        .filter(|d| d.role == shinken_config::daemons::Role::Scheduler)
        .find_map(|d| scheduler_module(topology, d))
        .or_else(|| topology.modules.iter().find(|m| is_mongodb_module(m)))
}

/// The default retention file: `$SHINKEN_STATE_DIR/retention.json` when that variable is set
/// (a read-only configuration directory, as a ConfigMap in a pod), else `state/retention.json`
/// beside the main configuration file.
pub fn default_path(main_file: &Path) -> PathBuf {
    if let Some(dir) = std::env::var_os("SHINKEN_STATE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("retention.json");
    }
    let base = if main_file.is_dir() {
        main_file.to_path_buf()
    } else {
        main_file.parent().map(Path::to_path_buf).unwrap_or_default()
    };
    base.join("state").join("retention.json")
}

/// Opens the store `module` declares (MongoDB), or the file at `default_path` without one.
/// Connecting is lazy: a MongoDB that is down now is not an error here, a bad `uri` is.
pub async fn open(module: Option<&ModuleDef>, default_path: &Path) -> Result<Store> {
    match module {
        Some(m) if is_mongodb_module(m) => Ok(Store::Mongo(MongoStore::from_module(m).await?)),
        Some(m) => Err(Error(format!(
            "module '{}' of type '{}' is not a retention module I know (use mongodb_retention)",
            m.name, m.module_type
        ))),
        None => Ok(Store::File(FileStore::new(default_path))),
    }
}

/// Unix seconds now.
pub(crate) fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn module(t: &str, uri: Option<&str>) -> ModuleDef {
        let mut params = BTreeMap::new();
        if let Some(u) = uri {
            params.insert("uri".to_string(), u.to_string());
        }
        params.insert("database".to_string(), "shinken".to_string());
        ModuleDef {
            name: "MongodbRetention".into(),
            module_type: t.into(),
            params,
            imported_from: String::new(),
        }
    }

    #[test]
    fn module_types_both_generations() {
        assert!(is_mongodb_module(&module("mongodb_retention", None)));
        assert!(is_mongodb_module(&module("retention-mongodb", None)));
        assert!(is_mongodb_module(&module("Retention_MongoDB", None)));
        assert!(!is_mongodb_module(&module("pickle_retention_file_generic", None)));
    }

    #[test]
    fn keys() {
        assert_eq!(service_key("web", "Disk /var"), "web/Disk /var");
        assert!(is_service_key("web/Disk /var") && !is_service_key("web"));
    }

    #[tokio::test]
    async fn uri_without_scheme_is_a_clear_error() {
        let Err(e) = open(Some(&module("mongodb_retention", Some("localhost:27017"))), Path::new("/tmp/x")).await else {
            panic!("a uri without scheme must be refused");
        };
        assert!(e.0.contains("mongodb://") && e.0.contains("1913"), "{e}");
        assert!(matches!(
            open(
                Some(&module("mongodb_retention", Some("mongodb://127.0.0.1:1/?directConnection=true"))),
                Path::new("/tmp/x")
            )
            .await,
            Ok(Store::Mongo(_))
        ));
        assert!(matches!(open(None, Path::new("/tmp/x.json")).await, Ok(Store::File(_))));
    }

    #[test]
    fn default_path_is_beside_the_main_file() {
        if std::env::var_os("SHINKEN_STATE_DIR").is_none() {
            assert_eq!(
                default_path(Path::new("/etc/shinken/shinken.cfg")),
                PathBuf::from("/etc/shinken/state/retention.json")
            );
        }
    }
}
