//! The poller's loop, shared with the reactionner (semantics reference, 5.1 to 5.3): pull work
//! from every scheduler link, run it with the [`Runner`], send each result back to the scheduler
//! that handed the job out.
//!
//! One task per scheduler link, and one collector per runner:
//!
//! - a link task connects (`get_running_id`; a changed running id means the scheduler restarted:
//!   its jobs in flight and results not yet sent are dropped), sends the results waiting for
//!   that scheduler (`put_results`, in batches of `results_batch`, 0 = all; a result is kept until
//!   a post succeeds), then asks for as much work as the runner has free slots (`get_checks` with
//!   `max_actions`) and submits it. It asks again at once while the scheduler returns work and
//!   slots stay free, else waits up to `polling_interval` or until results are ready;
//! - the collector takes finished results from the runner and files them under the link that
//!   handed the job out (job ids are only unique per scheduler: the runner gets ids of its own,
//!   mapped back to the link and the scheduler's id).
//!
//! Connection errors are logged once per change of state, with a back-off; results are kept.
//! A new configuration keeps the links whose URL did not change (with their work in flight) and
//! drops the work of links removed or moved. The runner is rebuilt only when its size changes;
//! the old one finishes its processes and their results still go home.

use super::link::{self, ConnLog, sleep_or_stop};
use crate::messages::{GetChecks, JobStatus, Jobs, PutResults, RunningId, SatelliteConf, SchedulerLink};
use crate::messages::{Job, JobResult};
use crate::protocol::{CallError, Client, Token};
use crate::runner::{Action, ActionResult, Outcome, Runner, RunnerConfig};
use shinken_config::daemons::Role;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

/// At most this many processes at once, whatever `max_workers x processes_by_worker` says.
pub const MAX_CONCURRENT_CAP: usize = 512;

/// Results kept per scheduler while it cannot take them; past it the oldest are dropped.
pub const MAX_PENDING_RESULTS: usize = 100_000;

/// How long a stopping satellite tries to hand its finished results back.
const FLUSH_ON_STOP: Duration = Duration::from_secs(2);

/// What a worker asks schedulers for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A poller: checks.
    Checks,
    /// A reactionner: notifications and event handlers.
    Actions,
}

/// The runner's size for a configuration: `max_workers` (0: one per CPU) x `processes_by_worker`
/// (0 read as 1), at least 1, at most [`MAX_CONCURRENT_CAP`] and what the open-files limit
/// allows (three descriptors per process: two pipes and a pidfd).
pub fn runner_config(conf: &SatelliteConf) -> RunnerConfig {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let workers = if conf.max_workers == 0 { cpus } else { conf.max_workers as usize };
    let per_worker = conf.processes_by_worker.max(1) as usize;
    let cap = MAX_CONCURRENT_CAP.min(open_files_budget());
    RunnerConfig {
        max_concurrent: workers.saturating_mul(per_worker).clamp(1, cap.max(1)),
        max_output_length: if conf.max_plugins_output_length == 0 {
            8192
        } else {
            conf.max_plugins_output_length as usize
        },
    }
}

/// Processes the open-files limit leaves room for.
fn open_files_budget() -> usize {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we own.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0;
    if !ok || lim.rlim_cur == libc::RLIM_INFINITY {
        return MAX_CONCURRENT_CAP;
    }
    (lim.rlim_cur as usize).saturating_sub(128) / 3
}

/// Raises the soft open-files limit to the hard one (at most 65536): each running plugin holds
/// pipes, and the usual soft limit of 1024 would cap a poller well below its slots.
pub fn raise_open_files_limit() {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit read and write a struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return;
        }
        let want = if lim.rlim_max == libc::RLIM_INFINITY {
            65536
        } else {
            lim.rlim_max.min(65536)
        };
        if want > lim.rlim_cur {
            lim.rlim_cur = want;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// A finished action as the scheduler takes it back, under the scheduler's job id.
pub fn job_result(job_id: u64, r: ActionResult) -> JobResult {
    JobResult {
        id: job_id,
        status: if r.outcome == Outcome::TimedOut {
            JobStatus::Timeout
        } else {
            JobStatus::Done
        },
        exit_status: r.exit_status,
        output: r.output,
        long_output: r.long_output,
        perf_data: r.perf_data,
        start_time: r.start_time,
        execution_time: r.execution_time,
    }
}

/// The action the runner executes for a job; `id` is the runner's own.
pub fn action(id: u64, job: Job) -> Action {
    Action {
        id,
        command_line: job.command_line,
        timeout: Duration::from_secs(job.timeout as u64),
        env: job.env,
    }
}

/// Counters for `/metrics` and `/v1/status`.
#[derive(Debug, Default)]
struct Stats {
    /// Jobs received from schedulers and submitted to the runner.
    received: AtomicU64,
    /// Results accepted by a `put_results` post.
    sent: AtomicU64,
    /// Results the scheduler did not know any more (it requeued them, or changed its part).
    refused: AtomicU64,
    /// Failed calls to schedulers.
    call_failures: AtomicU64,
    /// Results dropped: their link was removed, its scheduler restarted, or too many waited.
    dropped: AtomicU64,
}

/// Whose job a runner action is.
#[derive(Debug, Clone, Copy)]
struct Owner {
    /// The part of the link that handed it out.
    part: u32,
    /// The scheduler's id of the job.
    job_id: u64,
}

/// One scheduler link and its work.
struct Slot {
    link: SchedulerLink,
    client: Client,
    /// Identifies the task serving this slot (a replaced slot's old task stops).
    task_id: u64,
    /// Taken when the satellite stops, to wait for the task's last sends.
    task: Option<JoinHandle<()>>,
    /// Asks the task to stop gracefully (sending what it can first).
    stop: watch::Sender<bool>,
    /// Wakes the task when results for it are ready.
    wake: Arc<Notify>,
    /// The scheduler's ids of the jobs running for it (a job handed out twice is run once).
    in_flight: HashSet<u64>,
    /// Results waiting to be sent, oldest first.
    pending: VecDeque<JobResult>,
    /// Whether the last call reached the scheduler.
    connected: bool,
    /// The scheduler's running id, once known: a change means it restarted.
    running_id: Option<String>,
    last_error: Option<String>,
}

impl Slot {
    fn abort(&self) {
        if let Some(t) = &self.task {
            t.abort();
        }
    }
}

/// Settings from the configuration that every link task reads each round.
#[derive(Debug, Clone)]
struct Settings {
    tags: Vec<String>,
    polling_interval: Duration,
    /// 0: all results in one post.
    results_batch: usize,
}

struct State {
    settings: Settings,
    /// The current runner and its generation (a collector serves one generation).
    runner: Option<(u64, Runner)>,
    links: BTreeMap<u32, Slot>,
    /// Runner action id -> the link and job it runs.
    owners: HashMap<u64, Owner>,
    /// Collector tasks, aborted on stop.
    collectors: Vec<JoinHandle<()>>,
}

/// A poller or a reactionner: the links, the runner, and the bookkeeping between them.
pub struct Worker {
    me: String,
    role: Role,
    mode: Mode,
    token: Token,
    state: Mutex<State>,
    next_action_id: AtomicU64,
    next_task_id: AtomicU64,
    stats: Stats,
}

/// What a link task needs for one round, read under the lock.
struct Round {
    link: SchedulerLink,
    client: Client,
    connected: bool,
    settings: Settings,
}

impl Worker {
    pub fn new(me: String, role: Role, mode: Mode, token: Token) -> Arc<Worker> {
        Arc::new(Worker {
            me,
            role,
            mode,
            token,
            state: Mutex::new(State {
                settings: Settings {
                    tags: Vec::new(),
                    polling_interval: Duration::from_secs(1),
                    results_batch: 0,
                },
                runner: None,
                links: BTreeMap::new(),
                owners: HashMap::new(),
                collectors: Vec::new(),
            }),
            next_action_id: AtomicU64::new(1),
            next_task_id: AtomicU64::new(1),
            stats: Stats::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies a new configuration (none: drop everything). Must run inside the runtime.
    pub fn apply(self: &Arc<Self>, conf: Option<&SatelliteConf>) {
        let mut guard = self.lock();
        let st = &mut *guard;
        let Some(conf) = conf else {
            let dropped: usize = st.links.values().map(|s| s.pending.len() + s.in_flight.len()).sum();
            for (_, slot) in std::mem::take(&mut st.links) {
                slot.abort();
            }
            st.owners.clear();
            self.stats.dropped.fetch_add(dropped as u64, Ordering::Relaxed);
            return;
        };
        st.settings = Settings {
            tags: conf.tags.clone(),
            polling_interval: Duration::from_secs(conf.polling_interval.max(1) as u64),
            results_batch: conf.results_batch as usize,
        };
        let rc = runner_config(conf);
        if st.runner.as_ref().map(|(_, r)| r.config()) != Some(&rc) {
            let generation = st.runner.as_ref().map(|(g, _)| g + 1).unwrap_or(1);
            info!(
                "[{}] Running at most {} {} at once",
                self.me,
                rc.max_concurrent,
                if self.mode == Mode::Checks { "checks" } else { "actions" }
            );
            let runner = Runner::new(rc);
            st.collectors.retain(|c| !c.is_finished());
            st.collectors.push(tokio::spawn(self.clone().collect(generation, runner.clone())));
            st.runner = Some((generation, runner));
        }

        let wanted: BTreeMap<u32, &SchedulerLink> = conf.schedulers.iter().map(|l| (l.part_id, l)).collect();
        let parts: Vec<u32> = st.links.keys().copied().collect();
        for part in parts {
            let keep = wanted.get(&part).is_some_and(|l| l.url == st.links[&part].link.url);
            if keep {
                continue;
            }
            if let Some(slot) = st.links.remove(&part) {
                slot.abort();
                let lost = slot.pending.len() + slot.in_flight.len();
                self.stats.dropped.fetch_add(lost as u64, Ordering::Relaxed);
                st.owners.retain(|_, o| o.part != part);
                info!(
                    "[{}] Scheduler {} (part {part}) at {} is no longer mine: dropping its {lost} jobs and results",
                    self.me, slot.link.name, slot.link.url
                );
            }
        }
        for (part, link) in wanted {
            if let Some(slot) = st.links.get_mut(&part) {
                if !link::same_client(&slot.link, link) {
                    match link::client(link, &self.token) {
                        Ok(c) => slot.client = c,
                        Err(e) => error!("[{}] Cannot reach scheduler {}: {e}", self.me, link.name),
                    }
                }
                slot.link = link.clone();
                continue;
            }
            let client = match link::client(link, &self.token) {
                Ok(c) => c,
                Err(e) => {
                    error!("[{}] Cannot reach scheduler {}: {e}", self.me, link.name);
                    continue;
                }
            };
            let task_id = self.next_task_id.fetch_add(1, Ordering::Relaxed);
            let wake = Arc::new(Notify::new());
            let (stop, stop_rx) = watch::channel(false);
            let task = tokio::spawn(self.clone().link_loop(part, task_id, wake.clone(), stop_rx));
            st.links.insert(
                part,
                Slot {
                    link: link.clone(),
                    client,
                    task_id,
                    task: Some(task),
                    stop,
                    wake,
                    in_flight: HashSet::new(),
                    pending: VecDeque::new(),
                    connected: false,
                    running_id: None,
                    last_error: None,
                },
            );
        }
    }

    /// Stops every loop: each tries to send its finished results first (bounded), then the
    /// collectors end. Processes still running are killed when the runtime drops their tasks.
    pub async fn stop(&self) {
        let tasks: Vec<JoinHandle<()>> = {
            let mut st = self.lock();
            for slot in st.links.values() {
                let _ = slot.stop.send(true);
            }
            let tasks = st.links.values_mut().filter_map(|s| s.task.take()).collect();
            for c in st.collectors.drain(..) {
                c.abort();
            }
            tasks
        };
        for t in tasks {
            let abort = t.abort_handle();
            if tokio::time::timeout(FLUSH_ON_STOP + Duration::from_secs(1), t).await.is_err() {
                abort.abort();
            }
        }
        self.lock().links.clear();
    }

    /// Free slots of the current runner: processes it could start now, minus those submitted
    /// and still waiting for a slot.
    fn free_slots(&self) -> usize {
        let st = self.lock();
        match &st.runner {
            Some((_, r)) => r.free_slots().min(r.config().max_concurrent.max(1).saturating_sub(r.in_flight())),
            None => 0,
        }
    }

    fn round(&self, part: u32, task_id: u64) -> Option<Round> {
        let st = self.lock();
        let slot = st.links.get(&part).filter(|s| s.task_id == task_id)?;
        Some(Round {
            link: slot.link.clone(),
            client: slot.client.clone(),
            connected: slot.connected,
            settings: st.settings.clone(),
        })
    }

    /// Records a (re)connection; a changed running id drops the scheduler's work.
    fn on_connected(&self, part: u32, task_id: u64, running_id: String) -> bool {
        let mut guard = self.lock();
        let st = &mut *guard;
        let Some(slot) = st.links.get_mut(&part).filter(|s| s.task_id == task_id) else {
            return false;
        };
        if slot.running_id.as_ref().is_some_and(|old| *old != running_id) {
            info!(
                "[{}] The running id of the scheduler {} changed, we must clear its actions",
                self.me, slot.link.name
            );
            let lost = slot.pending.len() + slot.in_flight.len();
            self.stats.dropped.fetch_add(lost as u64, Ordering::Relaxed);
            slot.pending.clear();
            slot.in_flight.clear();
            st.owners.retain(|_, o| o.part != part);
        }
        slot.running_id = Some(running_id);
        slot.connected = true;
        slot.last_error = None;
        true
    }

    fn on_failure(&self, part: u32, task_id: u64, e: &CallError) {
        self.stats.call_failures.fetch_add(1, Ordering::Relaxed);
        let mut st = self.lock();
        if let Some(slot) = st.links.get_mut(&part).filter(|s| s.task_id == task_id) {
            if link::unreachable(e) {
                slot.connected = false;
            }
            slot.last_error = Some(e.to_string());
        }
    }

    /// Submits the jobs handed out by the link's scheduler; returns how many were new.
    fn launch(&self, part: u32, task_id: u64, jobs: Vec<Job>) -> usize {
        let mut guard = self.lock();
        let st = &mut *guard;
        let (Some(slot), Some((_, runner))) = (st.links.get_mut(&part).filter(|s| s.task_id == task_id), st.runner.as_ref()) else {
            return 0;
        };
        let mut n = 0;
        for job in jobs {
            if !slot.in_flight.insert(job.id) {
                continue;
            }
            let id = self.next_action_id.fetch_add(1, Ordering::Relaxed);
            st.owners.insert(id, Owner { part, job_id: job.id });
            runner.spawn(action(id, job));
            n += 1;
        }
        self.stats.received.fetch_add(n as u64, Ordering::Relaxed);
        n
    }

    /// Files finished results under the links that handed their jobs out, and wakes them.
    fn route(&self, results: Vec<ActionResult>) {
        let mut guard = self.lock();
        let st = &mut *guard;
        let mut woken: HashSet<u32> = HashSet::new();
        let mut overflow = 0;
        for r in results {
            let Some(owner) = st.owners.remove(&r.id) else {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            let Some(slot) = st.links.get_mut(&owner.part) else {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            slot.in_flight.remove(&owner.job_id);
            if slot.pending.len() >= MAX_PENDING_RESULTS {
                slot.pending.pop_front();
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                overflow += 1;
            }
            slot.pending.push_back(job_result(owner.job_id, r));
            woken.insert(owner.part);
        }
        for part in woken {
            if let Some(slot) = st.links.get(&part) {
                slot.wake.notify_one();
            }
        }
        if overflow > 0 {
            warn!(
                "[{}] {MAX_PENDING_RESULTS} results already wait for their scheduler: dropped the {overflow} oldest",
                self.me
            );
        }
    }

    /// Takes the results of one runner generation until it is replaced and has nothing left.
    async fn collect(self: Arc<Self>, generation: u64, runner: Runner) {
        loop {
            let results = tokio::select! {
                r = runner.wait_results() => r,
                _ = tokio::time::sleep(Duration::from_secs(1)) => Vec::new(),
            };
            if !results.is_empty() {
                self.route(results);
            }
            let current = self.lock().runner.as_ref().is_some_and(|(g, _)| *g == generation);
            if !current && runner.in_flight() == 0 && runner.queued_results() == 0 {
                return;
            }
        }
    }

    /// Sends the link's waiting results, batch after batch; a batch leaves the queue only once
    /// the scheduler took it.
    async fn send_results(&self, part: u32, task_id: u64, round: &Round) -> Result<(), CallError> {
        loop {
            let batch: Vec<JobResult> = {
                let st = self.lock();
                let Some(slot) = st.links.get(&part).filter(|s| s.task_id == task_id) else {
                    return Ok(());
                };
                let n = match round.settings.results_batch {
                    0 => slot.pending.len(),
                    b => b.min(slot.pending.len()),
                };
                slot.pending.iter().take(n).cloned().collect()
            };
            if batch.is_empty() {
                return Ok(());
            }
            let n = batch.len();
            let body = PutResults {
                worker_name: self.me.clone(),
                results: batch,
            };
            let accepted: usize = round.client.post("put_results", &body, true).await?;
            self.stats.sent.fetch_add(accepted.min(n) as u64, Ordering::Relaxed);
            self.stats.refused.fetch_add(n.saturating_sub(accepted) as u64, Ordering::Relaxed);
            let mut st = self.lock();
            if let Some(slot) = st.links.get_mut(&part).filter(|s| s.task_id == task_id) {
                let n = n.min(slot.pending.len());
                slot.pending.drain(..n);
            }
        }
    }

    /// The loop of one scheduler link.
    async fn link_loop(self: Arc<Self>, part: u32, task_id: u64, wake: Arc<Notify>, mut stop: watch::Receiver<bool>) {
        let mut conn = ConnLog::new(&self.me);
        let (do_checks, do_actions) = (self.mode == Mode::Checks, self.mode == Mode::Actions);
        loop {
            let Some(round) = self.round(part, task_id) else { return };
            if *stop.borrow() {
                if round.connected {
                    let _ = tokio::time::timeout(FLUSH_ON_STOP, self.send_results(part, task_id, &round)).await;
                }
                return;
            }
            if !round.connected {
                conn.connecting(&round.link);
                match round.client.get::<RunningId>("get_running_id", &[], false).await {
                    Ok(r) => {
                        if !self.on_connected(part, task_id, r.running_id) {
                            return;
                        }
                        conn.connected(&round.link);
                    }
                    Err(e) => {
                        self.on_failure(part, task_id, &e);
                        let wait = conn.failed(&format!("Connection error with scheduler {}: {e}", round.link.name));
                        sleep_or_stop(wait, &mut stop).await;
                        continue;
                    }
                }
            }
            if let Err(e) = self.send_results(part, task_id, &round).await {
                self.on_failure(part, task_id, &e);
                let wait = conn.failed(&format!("Sent failed! {e}"));
                sleep_or_stop(wait, &mut stop).await;
                continue;
            }
            let free = self.free_slots();
            let mut got = 0;
            if free > 0 {
                let req = GetChecks {
                    do_checks,
                    do_actions,
                    tags: round.settings.tags.clone(),
                    worker_name: self.me.clone(),
                    max_actions: free.min(u32::MAX as usize) as u32,
                };
                match round.client.post::<_, Jobs>("get_checks", &req, true).await {
                    Ok(jobs) => got = self.launch(part, task_id, jobs.jobs),
                    Err(e) => {
                        self.on_failure(part, task_id, &e);
                        let wait = conn.failed(&format!("Cannot get work from scheduler {}: {e}", round.link.name));
                        sleep_or_stop(wait, &mut stop).await;
                        continue;
                    }
                }
            }
            conn.succeeded(&round.link);
            if got > 0 && self.free_slots() > 0 {
                // The scheduler has more: ask again now rather than at the next interval.
                tokio::task::yield_now().await;
                continue;
            }
            tokio::select! {
                _ = tokio::time::sleep(round.settings.polling_interval) => {}
                _ = wake.notified() => {}
                r = stop.changed() => if r.is_err() { return },
            }
        }
    }

    /// `GET /v1/status` of a poller or reactionner.
    pub fn status(&self) -> serde_json::Value {
        let st = self.lock();
        let runner = st.runner.as_ref().map(|(_, r)| {
            serde_json::json!({
                "max_concurrent": r.config().max_concurrent,
                "max_output_length": r.config().max_output_length,
                "in_flight": r.in_flight(),
                "free_slots": r.free_slots(),
            })
        });
        let schedulers: Vec<serde_json::Value> = st
            .links
            .values()
            .map(|s| {
                serde_json::json!({
                    "name": s.link.name,
                    "part_id": s.link.part_id,
                    "epoch": s.link.epoch,
                    "url": s.link.url,
                    "connected": s.connected,
                    "running_id": s.running_id,
                    "in_flight": s.in_flight.len(),
                    "pending_results": s.pending.len(),
                    "last_error": s.last_error,
                })
            })
            .collect();
        serde_json::json!({
            "runner": runner,
            "tags": st.settings.tags,
            "schedulers": schedulers,
            "counters": {
                "received": self.stats.received.load(Ordering::Relaxed),
                "sent": self.stats.sent.load(Ordering::Relaxed),
                "refused": self.stats.refused.load(Ordering::Relaxed),
                "call_failures": self.stats.call_failures.load(Ordering::Relaxed),
                "dropped": self.stats.dropped.load(Ordering::Relaxed),
            },
        })
    }

    /// Prometheus text of a poller or reactionner.
    pub fn metrics(&self) -> String {
        let st = self.lock();
        let role = self.role.name();
        let (in_flight, max) = st
            .runner
            .as_ref()
            .map(|(_, r)| (r.in_flight(), r.config().max_concurrent))
            .unwrap_or((0, 0));
        let connected = st.links.values().filter(|s| s.connected).count();
        let pending: usize = st.links.values().map(|s| s.pending.len()).sum();
        let mut out = String::new();
        let mut gauge = |name: &str, v: u64| out.push_str(&format!("# TYPE shinken_{role}_{name} gauge\nshinken_{role}_{name} {v}\n"));
        gauge("schedulers_connected", connected as u64);
        gauge("actions_in_flight", in_flight as u64);
        gauge("max_concurrent_actions", max as u64);
        gauge("results_pending", pending as u64);
        for (name, c) in [
            ("actions_received_total", &self.stats.received),
            ("results_sent_total", &self.stats.sent),
            ("results_refused_total", &self.stats.refused),
            ("results_dropped_total", &self.stats.dropped),
            ("call_failures_total", &self.stats.call_failures),
        ] {
            out.push_str(&format!(
                "# TYPE shinken_{role}_{name} counter\nshinken_{role}_{name} {}\n",
                c.load(Ordering::Relaxed)
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(max_workers: u32, per: u32) -> SatelliteConf {
        SatelliteConf {
            name: "p".into(),
            epoch: 1,
            schedulers: Vec::new(),
            tags: Vec::new(),
            polling_interval: 1,
            max_workers,
            processes_by_worker: per,
            results_batch: 0,
            max_plugins_output_length: 0,
            arbiter: "a".into(),
        }
    }

    #[test]
    fn runner_size_is_workers_times_processes_capped() {
        assert_eq!(runner_config(&conf(2, 3)).max_concurrent, 6);
        assert_eq!(runner_config(&conf(1, 0)).max_concurrent, 1);
        assert!(runner_config(&conf(30, 256)).max_concurrent <= MAX_CONCURRENT_CAP);
        let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        assert_eq!(runner_config(&conf(0, 1)).max_concurrent, cpus.min(MAX_CONCURRENT_CAP));
        assert_eq!(runner_config(&conf(1, 1)).max_output_length, 8192);
    }

    #[test]
    fn a_timeout_is_reported_as_such_under_the_scheduler_id() {
        let r = ActionResult {
            id: 99,
            outcome: Outcome::TimedOut,
            exit_status: 3,
            output: "x".into(),
            long_output: String::new(),
            perf_data: String::new(),
            start_time: 1.0,
            execution_time: 2.0,
        };
        let j = job_result(7, r.clone());
        assert_eq!((j.id, j.status, j.exit_status), (7, JobStatus::Timeout, 3));
        let done = job_result(
            8,
            ActionResult {
                outcome: Outcome::Exited(2),
                exit_status: 2,
                ..r
            },
        );
        assert_eq!(done.status, JobStatus::Done);
    }
}
