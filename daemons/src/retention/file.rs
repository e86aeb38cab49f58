//! File retention for one machine: a snapshot and an append-only journal.
//!
//! `<file>` is a snapshot of every record (JSON), `<file>.journal` the records saved since, one
//! JSON line each, appended and synced per batch: a save costs what changed, not the size of
//! everything (a whole-file rewrite per batch cost a scheduler of 10k services most of its CPU).
//! When the journal outgrows the snapshot, the snapshot is rewritten (to `<file>.tmp`, synced,
//! renamed over: a reader sees the old one or the new one) and the journal emptied. A torn last
//! line (a crash in the middle of an append) is ignored and cut before the next append.
//!
//! Several processes on the machine (a master and its spare under `shinken run`) share the
//! files: every operation holds an exclusive `flock` on `<file>.lock` and first reads what the
//! others appended since (or everything again after another process rewrote the snapshot), so
//! the fencing check (a record whose stored epoch is newer is not overwritten) always sees the
//! newest records. The arbiters' epoch counter is `<file>.epoch`. Blocking I/O runs off the
//! async threads.

use super::{Error, Record, Result, RetentionStore, SaveOutcome, unix_now};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The retention files.
#[derive(Clone)]
pub struct FileStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    /// Every record as this process last read or wrote them, with how far the snapshot and the
    /// journal were read.
    cache: Mutex<Option<Cache>>,
}

struct Cache {
    snapshot: Option<FileId>,
    /// Bytes of the journal applied to `records`.
    journal_offset: u64,
    records: HashMap<String, Record>,
    /// Size of the snapshot when read or written, to decide when to compact.
    snapshot_len: u64,
}

/// Enough of a file's metadata to notice that another process replaced it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
    len: u64,
    mtime_ns: i128,
}

impl FileId {
    fn of(path: &Path) -> Option<FileId> {
        let m = fs::metadata(path).ok()?;
        Some(FileId {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime_ns: m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
        })
    }
}

/// The snapshot's content.
#[derive(Serialize, Deserialize, Default)]
struct FileData {
    version: u32,
    records: HashMap<String, Record>,
}

#[derive(Serialize, Deserialize, Default)]
struct EpochData {
    value: u64,
}

/// The journal is folded into the snapshot once it is this many times the snapshot's size
/// (and at least [`MIN_COMPACT_BYTES`]).
const COMPACT_RATIO: u64 = 2;
const MIN_COMPACT_BYTES: u64 = 4 << 20;

/// Holds an exclusive `flock` on a lock file until dropped.
struct Lock(File);

impl Lock {
    fn take(path: &Path) -> Result<Lock> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(|e| Error(format!("cannot create {}: {e}", dir.display())))?;
        }
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| Error(format!("cannot open {}: {e}", path.display())))?;
        // SAFETY: flock on a file descriptor we own; released when the file is closed.
        let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
        if rc != 0 {
            return Err(Error(format!(
                "cannot lock {}: {}",
                path.display(),
                std::io::Error::last_os_error()
            )));
        }
        Ok(Lock(f))
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // SAFETY: as above.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

/// Writes `bytes` to `<path>.tmp`, syncs, renames over `path`, syncs the directory.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(|e| Error(format!("cannot create {}: {e}", dir.display())))?;
    let tmp = with_suffix(path, ".tmp");
    let io = |e: std::io::Error| Error(format!("cannot write {}: {e}", tmp.display()));
    let mut f = File::create(&tmp).map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)?;
    drop(f);
    fs::rename(&tmp, path).map_err(|e| Error(format!("cannot rename {} to {}: {e}", tmp.display(), path.display())))?;
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

impl FileStore {
    pub fn new(path: &Path) -> FileStore {
        FileStore {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                cache: Mutex::new(None),
            }),
        }
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    fn epoch_path(&self) -> PathBuf {
        with_suffix(&self.inner.path, ".epoch")
    }

    /// Runs blocking file work off the async threads.
    async fn blocking<T: Send + 'static>(&self, f: impl FnOnce(&Inner) -> Result<T> + Send + 'static) -> Result<T> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| Error(format!("retention file task failed: {e}")))?
    }
}

impl Inner {
    fn journal_path(&self) -> PathBuf {
        with_suffix(&self.path, ".journal")
    }

    /// Brings `cache` up to date with the files (call under the lock): everything again when
    /// the snapshot changed, else the journal lines appended since the last read.
    fn refresh(&self, cache: &mut Option<Cache>) -> Result<()> {
        let snapshot = FileId::of(&self.path);
        let stale = cache.as_ref().is_none_or(|c| c.snapshot != snapshot);
        if stale {
            let (records, snapshot_len) = match snapshot {
                None => (HashMap::new(), 0),
                Some(id) => {
                    let bytes = fs::read(&self.path).map_err(|e| Error(format!("cannot read {}: {e}", self.path.display())))?;
                    let data: FileData = serde_json::from_slice(&bytes)
                        .map_err(|e| Error(format!("{} is not a retention file: {e}", self.path.display())))?;
                    (data.records, id.len)
                }
            };
            *cache = Some(Cache {
                snapshot,
                journal_offset: 0,
                records,
                snapshot_len,
            });
        }
        let Some(c) = cache.as_mut() else { return Ok(()) };
        let journal = self.journal_path();
        let mut f = match File::open(&journal) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                c.journal_offset = 0;
                return Ok(());
            }
            Err(e) => return Err(Error(format!("cannot read {}: {e}", journal.display()))),
        };
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        if len < c.journal_offset {
            // Emptied by another process's compaction without a new snapshot: read it all.
            c.journal_offset = 0;
        }
        if len == c.journal_offset {
            return Ok(());
        }
        f.seek(SeekFrom::Start(c.journal_offset))
            .map_err(|e| Error(format!("cannot read {}: {e}", journal.display())))?;
        let mut tail = Vec::with_capacity((len - c.journal_offset) as usize);
        f.read_to_end(&mut tail)
            .map_err(|e| Error(format!("cannot read {}: {e}", journal.display())))?;
        let mut consumed = 0usize;
        for line in tail.split_inclusive(|b| *b == b'\n') {
            // A line without its newline, or that does not parse, is the torn end of an
            // append interrupted by a crash: stop there; the next append cuts it.
            if !line.ends_with(b"\n") {
                break;
            }
            match serde_json::from_slice::<Record>(&line[..line.len() - 1]) {
                Ok(r) => {
                    c.records.insert(r.key.clone(), r);
                }
                Err(_) => break,
            }
            consumed += line.len();
        }
        c.journal_offset += consumed as u64;
        Ok(())
    }

    /// Appends records to the journal (after cutting a torn end), synced.
    fn append(&self, c: &mut Cache, records: &[Record]) -> Result<()> {
        let journal = self.journal_path();
        let io = |e: std::io::Error| Error(format!("cannot write {}: {e}", journal.display()));
        let mut f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&journal)
            .map_err(io)?;
        let len = f.metadata().map_err(io)?.len();
        if len > c.journal_offset {
            f.set_len(c.journal_offset).map_err(io)?;
        }
        f.seek(SeekFrom::Start(c.journal_offset)).map_err(io)?;
        let mut buf = Vec::with_capacity(records.len() * 1024);
        for r in records {
            serde_json::to_writer(&mut buf, r).map_err(|e| Error(format!("cannot encode retention data: {e}")))?;
            buf.push(b'\n');
        }
        f.write_all(&buf).map_err(io)?;
        f.sync_data().map_err(io)?;
        c.journal_offset += buf.len() as u64;
        Ok(())
    }

    /// Folds the journal into a new snapshot when it has grown large.
    fn maybe_compact(&self, c: &mut Cache) -> Result<()> {
        if c.journal_offset < MIN_COMPACT_BYTES.max(c.snapshot_len * COMPACT_RATIO) {
            return Ok(());
        }
        let data = FileData {
            version: 1,
            records: std::mem::take(&mut c.records),
        };
        let encoded = serde_json::to_vec(&data);
        c.records = data.records;
        let bytes = encoded.map_err(|e| Error(format!("cannot encode retention data: {e}")))?;
        write_atomic(&self.path, &bytes)?;
        let journal = self.journal_path();
        OpenOptions::new()
            .write(true)
            .open(&journal)
            .and_then(|f| f.set_len(0))
            .map_err(|e| Error(format!("cannot empty {}: {e}", journal.display())))?;
        c.snapshot = FileId::of(&self.path);
        c.snapshot_len = bytes.len() as u64;
        c.journal_offset = 0;
        Ok(())
    }
}

impl RetentionStore for FileStore {
    async fn load(&self, keys: &[String]) -> Result<HashMap<String, Record>> {
        let keys = keys.to_vec();
        self.blocking(move |inner| {
            let _lock = Lock::take(&with_suffix(&inner.path, ".lock"))?;
            let mut cache = inner.cache.lock().unwrap_or_else(|e| e.into_inner());
            inner.refresh(&mut cache)?;
            let all = cache.as_ref().map(|c| &c.records);
            Ok(keys
                .into_iter()
                .filter_map(|k| all.and_then(|a| a.get(&k)).map(|r| (k, r.clone())))
                .collect())
        })
        .await
    }

    async fn save(&self, records: Vec<Record>, epoch: u64) -> Result<SaveOutcome> {
        if records.is_empty() {
            return Ok(SaveOutcome::default());
        }
        self.blocking(move |inner| {
            let _lock = Lock::take(&with_suffix(&inner.path, ".lock"))?;
            let mut guard = inner.cache.lock().unwrap_or_else(|e| e.into_inner());
            inner.refresh(&mut guard)?;
            let c = guard.get_or_insert_with(|| Cache {
                snapshot: None,
                journal_offset: 0,
                records: HashMap::new(),
                snapshot_len: 0,
            });
            let mut out = SaveOutcome::default();
            let now = unix_now();
            let mut accepted = Vec::with_capacity(records.len());
            for mut r in records {
                if c.records.get(&r.key).is_some_and(|old| old.epoch > epoch) {
                    out.refused_stale.push(r.key);
                    continue;
                }
                r.epoch = epoch;
                r.saved_at = now;
                accepted.push(r);
            }
            if !accepted.is_empty() {
                inner.append(c, &accepted)?;
                out.written = accepted.len();
                for r in accepted {
                    c.records.insert(r.key.clone(), r);
                }
                inner.maybe_compact(c)?;
            }
            Ok(out)
        })
        .await
    }

    async fn bump_epoch(&self, at_least: u64) -> Result<u64> {
        let path = self.epoch_path();
        self.blocking(move |_| {
            let _lock = Lock::take(&with_suffix(&path, ".lock"))?;
            let current = read_epoch(&path)?;
            let next = (current + 1).max(at_least);
            let bytes = serde_json::to_vec(&EpochData { value: next }).map_err(|e| Error(e.to_string()))?;
            write_atomic(&path, &bytes)?;
            Ok(next)
        })
        .await
    }

    async fn current_epoch(&self) -> Result<u64> {
        let path = self.epoch_path();
        self.blocking(move |_| read_epoch(&path)).await
    }

    fn describe(&self) -> String {
        format!("file {}", self.inner.path.display())
    }
}

fn read_epoch(path: &Path) -> Result<u64> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice::<EpochData>(&bytes)
            .map(|d| d.value)
            .map_err(|e| Error(format!("{} is not an epoch file: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(Error(format!("cannot read {}: {e}", path.display()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::state::{ItemKind, ItemState};

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("shinken-retfile-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn record(key: &str, attempt: u32) -> Record {
        let mut state = ItemState::new(ItemKind::Service, 3);
        state.attempt = attempt;
        state.output = format!("attempt {attempt}");
        Record {
            key: key.to_string(),
            epoch: 0,
            state,
            saved_at: 0.0,
        }
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
    }

    #[test]
    fn two_stores_on_one_file_see_each_other_and_are_fenced() {
        let d = dir("two");
        let path = d.join("retention.json");
        let (a, b) = (FileStore::new(&path), FileStore::new(&path));
        let rt = rt();
        rt.block_on(async {
            assert_eq!(a.save(vec![record("h/s", 1)], 5).await.unwrap().written, 1);
            // b has never read the files: it sees a's journal line.
            assert_eq!(b.load(&["h/s".into()]).await.unwrap()["h/s"].state.attempt, 1);
            // An older epoch is refused by b too, whatever b cached.
            let out = b.save(vec![record("h/s", 2)], 4).await.unwrap();
            assert_eq!((out.written, out.refused_stale.as_slice()), (0, ["h/s".to_string()].as_slice()));
            assert_eq!(b.save(vec![record("h/s", 3)], 6).await.unwrap().written, 1);
            let got = a.load(&["h/s".into()]).await.unwrap();
            assert_eq!((got["h/s"].state.attempt, got["h/s"].epoch), (3, 6));
        });
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn the_journal_is_folded_into_the_snapshot_and_a_torn_line_is_cut() {
        let d = dir("compact");
        let path = d.join("retention.json");
        let store = FileStore::new(&path);
        let rt = rt();
        rt.block_on(async {
            // Enough saves to pass the compaction threshold.
            for round in 0..3_000u32 {
                let batch: Vec<Record> = (0..10).map(|i| record(&format!("h/s{i}"), round)).collect();
                store.save(batch, 1).await.unwrap();
            }
        });
        let journal = with_suffix(&path, ".journal");
        assert!(path.exists(), "a snapshot was written");
        assert!(
            fs::metadata(&journal).unwrap().len() < MIN_COMPACT_BYTES,
            "the journal was emptied at least once"
        );
        // A crash in the middle of an append leaves a torn line: ignored, then cut.
        let mut f = OpenOptions::new().append(true).open(&journal).unwrap();
        f.write_all(b"{\"key\":\"h/s0\",\"epo").unwrap();
        drop(f);
        let fresh = FileStore::new(&path);
        rt.block_on(async {
            assert_eq!(fresh.load(&["h/s0".into()]).await.unwrap()["h/s0"].state.attempt, 2_999);
            fresh.save(vec![record("h/s0", 7)], 1).await.unwrap();
            let again = FileStore::new(&path);
            assert_eq!(again.load(&["h/s0".into()]).await.unwrap()["h/s0"].state.attempt, 7);
        });
        fs::remove_dir_all(&d).unwrap();
    }

    /// Times survive the JSON file to the last bit but one: serde_json's default parser may be
    /// one ULP off (about 0.2 microsecond on a timestamp); its `float_roundtrip` feature makes it
    /// exact, and then this test checks that.
    #[test]
    fn floats_round_trip_exactly_through_json() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let t = 1.6e9 + (x % 400_000_000_000_000) as f64 / 1e6 + (x >> 40) as f64 * 1e-9;
            let back: f64 = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
            assert_eq!(t.to_bits(), back.to_bits(), "{t} came back as {back}");
        }
    }
}
