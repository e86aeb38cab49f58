//! The write-behind: the engine hands over the records it changed and goes on; a background task
//! writes them in batches.
//!
//! - [`Writer::submit`] only takes a short lock and merges the records into the queue, keeping the
//!   newest record per key: the queue never holds more than one record per host or service, so its
//!   memory is bounded by the part, whatever the store does.
//! - The task writes what is queued at most one batch window (500 ms) after it arrived; while the
//!   store fails it keeps the records queued (newer ones submitted meanwhile win) and retries
//!   with an exponential backoff capped at 5 s. It logs once when the store becomes unreachable
//!   ("Retention store unreachable: ..., N changes queued") and once when it is back with the
//!   queue drained.
//! - A write refused because a newer epoch holds a record is not retried: another scheduler owns
//!   the part now. It is logged ("Retention write refused: a newer epoch holds ...") and counted.
//! - [`Writer::status`] is what the scheduler reports in `/v1/status` and `/metrics`;
//!   [`Writer::flush`] waits, bounded, for the queue to drain (part dropped, daemon stopping).

use super::{Record, RetentionStore, unix_now};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tracing::{info, warn};

/// The writer's timings.
#[derive(Clone, Copy, Debug)]
pub struct WriterOptions {
    /// A change waits at most this long for others to share its write.
    pub batch_window: Duration,
    /// The first retry after a failure; doubled at every failure...
    pub backoff_min: Duration,
    /// ...up to this.
    pub backoff_max: Duration,
    /// Records per store call.
    pub chunk: usize,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            batch_window: Duration::from_millis(500),
            backoff_min: Duration::from_millis(250),
            backoff_max: Duration::from_secs(5),
            chunk: 2000,
        }
    }
}

/// What the writer reports.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WriterStatus {
    /// `file ...` or `mongodb host:port/db`.
    pub backend: String,
    /// The last write succeeded (or none was needed yet).
    pub healthy: bool,
    /// Changes waiting to be written (one per host or service at most).
    pub queued: usize,
    pub last_error: Option<String>,
    /// Unix seconds.
    pub last_error_at: Option<f64>,
    /// Unix seconds of the last successful write.
    pub last_success: Option<f64>,
    pub written_total: u64,
    /// Store calls that failed (each is retried).
    pub failures_total: u64,
    /// Records refused because a newer epoch holds them.
    pub refused_total: u64,
    /// The last key refused as stale.
    pub last_refused: Option<String>,
    /// A write was refused as stale: this scheduler must not be the active one for its part.
    pub fenced: bool,
}

/// State shared by the handle and the task.
struct Shared {
    /// Newest record per key, not written yet.
    queue: Mutex<HashMap<String, Record>>,
    /// Keys of the records taken by the task and being written (counted as queued).
    in_flight: Mutex<HashSet<String>>,
    /// Wakes the task: something was queued, or a flush is asked.
    wake: Notify,
    /// Write now: skip the batch window and the backoff once.
    urgent: AtomicBool,
    status: Mutex<WriterStatus>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The handle the scheduler keeps; the task stops when it is dropped.
pub struct Writer {
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Writer {
    /// Starts the task (inside a tokio runtime) with the default timings.
    pub fn spawn<S: RetentionStore + 'static>(store: Arc<S>) -> Writer {
        Writer::spawn_with(store, WriterOptions::default())
    }

    pub fn spawn_with<S: RetentionStore + 'static>(store: Arc<S>, opts: WriterOptions) -> Writer {
        let shared = Arc::new(Shared {
            queue: Mutex::new(HashMap::new()),
            in_flight: Mutex::new(HashSet::new()),
            wake: Notify::new(),
            urgent: AtomicBool::new(false),
            status: Mutex::new(WriterStatus {
                backend: store.describe(),
                healthy: true,
                ..Default::default()
            }),
        });
        let task = tokio::spawn(run(store, shared.clone(), opts));
        Writer { shared, task }
    }

    /// Queues records (their `epoch` says which part wrote them). Returns at once.
    pub fn submit(&self, records: Vec<Record>) {
        if records.is_empty() {
            return;
        }
        {
            let mut q = lock(&self.shared.queue);
            for r in records {
                q.insert(r.key.clone(), r);
            }
        }
        self.shared.wake.notify_one();
    }

    /// Changes not written yet.
    pub fn queued(&self) -> usize {
        let q = lock(&self.shared.queue);
        let writing = lock(&self.shared.in_flight);
        q.len() + writing.iter().filter(|k| !q.contains_key(*k)).count()
    }

    pub fn status(&self) -> WriterStatus {
        let mut s = lock(&self.shared.status).clone();
        s.queued = self.queued();
        s
    }

    /// Asks for an immediate write and waits until the queue is empty, at most `timeout`.
    /// True when drained.
    pub async fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.queued() == 0 {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            self.shared.urgent.store(true, Ordering::SeqCst);
            self.shared.wake.notify_one();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The task: waits for records, writes them in batches, retries with backoff.
async fn run<S: RetentionStore>(store: Arc<S>, shared: Arc<Shared>, opts: WriterOptions) {
    let mut backoff: Option<Duration> = None;
    let mut last_write = Instant::now() - opts.batch_window;
    loop {
        // Wait for work, then for the batch window (or the backoff) unless a flush is asked.
        if lock(&shared.queue).is_empty() {
            shared.wake.notified().await;
        }
        let pause = match backoff {
            Some(b) => b,
            None => opts.batch_window.saturating_sub(last_write.elapsed()),
        };
        if !pause.is_zero() && !shared.urgent.load(Ordering::SeqCst) {
            let until = tokio::time::Instant::now() + pause;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(until) => break,
                    _ = shared.wake.notified() => {
                        if shared.urgent.load(Ordering::SeqCst) {
                            break;
                        }
                    }
                }
            }
        }
        shared.urgent.store(false, Ordering::SeqCst);
        let batch: Vec<Record> = {
            let mut q = lock(&shared.queue);
            let batch: Vec<Record> = q.drain().map(|(_, r)| r).collect();
            *lock(&shared.in_flight) = batch.iter().map(|r| r.key.clone()).collect();
            batch
        };
        if batch.is_empty() {
            continue;
        }
        last_write = Instant::now();
        match write_batch(&*store, batch, opts.chunk).await {
            Ok(refused) => {
                let was_unhealthy = {
                    let mut st = lock(&shared.status);
                    let was = !st.healthy;
                    st.healthy = true;
                    st.last_success = Some(unix_now());
                    st.written_total += refused.written as u64;
                    if !refused.keys.is_empty() {
                        st.refused_total += refused.keys.len() as u64;
                        st.last_refused = refused.keys.last().cloned();
                        st.fenced = true;
                    }
                    was
                };
                lock(&shared.in_flight).clear();
                if let Some(first) = refused.keys.first() {
                    let more = refused.keys.len() - 1;
                    let others = if more > 0 { format!(" (and {more} more)") } else { String::new() };
                    warn!("Retention write refused: a newer epoch holds {first}{others}; I must not be the active scheduler");
                }
                if was_unhealthy {
                    let left = lock(&shared.queue).len();
                    if left == 0 {
                        info!("Retention store back, queue drained");
                    } else {
                        info!("Retention store back, {left} changes still queued");
                    }
                }
                backoff = None;
            }
            Err((e, unsaved, written)) => {
                let queued = {
                    let mut q = lock(&shared.queue);
                    for r in unsaved {
                        // A newer record submitted meanwhile wins.
                        q.entry(r.key.clone()).or_insert(r);
                    }
                    q.len()
                };
                lock(&shared.in_flight).clear();
                let first_failure = {
                    let mut st = lock(&shared.status);
                    let first = st.healthy;
                    st.healthy = false;
                    st.written_total += written as u64;
                    st.failures_total += 1;
                    st.last_error = Some(e.0.clone());
                    st.last_error_at = Some(unix_now());
                    first
                };
                if first_failure {
                    warn!("Retention store unreachable: {e}, {queued} changes queued; retrying with backoff");
                }
                backoff = Some(match backoff {
                    None => opts.backoff_min,
                    Some(b) => (b * 2).min(opts.backoff_max),
                });
            }
        }
    }
}

struct Written {
    written: usize,
    keys: Vec<String>,
}

/// Writes a batch, grouped by epoch, chunk by chunk. On a failure, returns the records not
/// written (the failed chunk and the ones after it) and how many were.
async fn write_batch<S: RetentionStore>(
    store: &S,
    batch: Vec<Record>,
    chunk: usize,
) -> Result<Written, (super::Error, Vec<Record>, usize)> {
    let mut by_epoch: HashMap<u64, Vec<Record>> = HashMap::new();
    for r in batch {
        by_epoch.entry(r.epoch).or_default().push(r);
    }
    let mut epochs: Vec<u64> = by_epoch.keys().copied().collect();
    epochs.sort_unstable();
    let mut out = Written {
        written: 0,
        keys: Vec::new(),
    };
    let mut remaining: Vec<Record> = Vec::new();
    let mut failure = None;
    for epoch in epochs {
        let records = by_epoch.remove(&epoch).unwrap_or_default();
        if failure.is_some() {
            remaining.extend(records);
            continue;
        }
        let mut records = records.into_iter().peekable();
        while records.peek().is_some() {
            let part: Vec<Record> = records.by_ref().take(chunk.max(1)).collect();
            match store.save(part.clone(), epoch).await {
                Ok(o) => {
                    out.written += o.written;
                    out.keys.extend(o.refused_stale);
                }
                Err(e) => {
                    failure = Some(e);
                    remaining.extend(part);
                    remaining.extend(records.by_ref());
                }
            }
        }
    }
    match failure {
        None => Ok(out),
        Some(e) => Err((e, remaining, out.written)),
    }
}
