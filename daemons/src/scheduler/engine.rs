//! One configuration part, scheduled: the hosts and services a scheduler owns, their states,
//! the checks due, the checks handed out, and the events (broks) for brokers.
//!
//! Pure like the rest of this module: every method takes "now" (Unix seconds) and randomness
//! comes from a seeded generator, so the daemon around it is thin I/O and the rules are tested
//! with fixed timestamps. The daemon calls, as Shinken's scheduler loop does (semantics 3.1):
//! [`Engine::get_checks`] when a poller (checks) or a reactionner (notifications and event
//! handlers, see `actions.rs` and [`super::notify`]) asks, [`Engine::put_results`] when results
//! arrive, and [`Engine::tick`] about once a second (downtimes, due notifications scattered to
//! contacts, orphaned checks and actions, freshness, internal checks).

use super::actions::Action;
use super::notify::{self, NotifSettings};
use super::schedule::{FreshnessInput, ScheduleInput, is_stale, next_check_time, stale_log_line};
use super::state::modattr;
use super::state::{CheckResult, CheckType, EventCounters, ItemKind, ItemState, StateOptions, apply_result};
use crate::messages::{Brok, GetChecks, ItemStatus, Job, JobResult, JobStatus, SchedulerStatus};
use shinken_config::Config;
use shinken_config::commandline::CommandContext;
use shinken_config::macros::{self, MacroContext, MacroEnv};
use shinken_config::object::Object;
use shinken_config::schema::{self, Kind};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, VecDeque};
use std::sync::LazyLock;

/// A host or a service of the part, with what scheduling needs from its definition.
#[derive(Debug, Clone)]
pub struct Item {
    pub kind: ItemKind,
    /// Index of its definition in the configuration's hosts or services.
    pub obj: u32,
    /// For a service, the index of its host among the engine's items; a host points to itself.
    pub host: u32,
    pub state: ItemState,
    /// Interval units (the configuration's `interval_length` seconds each).
    pub check_interval: f64,
    pub retry_interval: f64,
    pub active_checks_enabled: bool,
    pub passive_checks_enabled: bool,
    pub check_freshness: bool,
    pub freshness_threshold: f64,
    /// Seconds after which a check handed out and not back is handed out again.
    pub time_to_orphanage: f64,
    /// The check command as written (`check_tcp!7768`), or none (a host then is always UP).
    pub check_command: Option<String>,
    pub poller_tag: Option<String>,
    /// A check of this item is planned (an entry in the due queue at `state.next_check`).
    pub queued: bool,
    /// A check of this item is handed out to a poller and not back yet.
    pub in_checking: bool,
    /// Notification settings, contacts and escalations (semantics §3.7).
    pub notif: NotifSettings,
    /// `event_handler` command call.
    pub event_handler: Option<String>,
    pub event_handler_enabled: bool,
    /// Flap detection (semantics §3.8).
    pub flap: notify::FlapSettings,
}

/// A command call resolved for an item.
pub(super) struct Resolved {
    /// The command's name (`notify-by-email`).
    pub name: String,
    pub command_line: String,
    /// The command's own `timeout`, if set.
    pub timeout: Option<u32>,
    pub reactionner_tag: Option<String>,
    pub env: Vec<(String, String)>,
}

/// A check handed out to a poller, waiting for its result.
#[derive(Debug, Clone)]
struct InFlight {
    item: u32,
    worker: String,
    t_to_go: f64,
    handed_at: f64,
    timeout: u32,
}

/// Why a result was not consumed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResultRejected {
    /// No such check is out (already consumed, requeued as orphan, or from an older part).
    UnknownCheck(u64),
}

/// What happened in a call, for the daemon to log (one line per event a user greps for).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Events {
    /// Monitoring-log lines (`SERVICE ALERT: ...`, freshness warnings, orphans).
    pub log: Vec<String>,
}

/// The engine's tunables, from the main configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub interval_length: f64,
    pub max_service_check_spread: f64,
    pub max_host_check_spread: f64,
    pub service_check_timeout: u32,
    pub host_check_timeout: u32,
    pub timeout_exit_status: u8,
    pub execute_service_checks: bool,
    pub execute_host_checks: bool,
    pub accept_passive_service_checks: bool,
    pub accept_passive_host_checks: bool,
    pub check_service_freshness: bool,
    pub check_host_freshness: bool,
    pub additional_freshness_latency: f64,
    pub state: StateOptions,
    pub enable_environment_macros: bool,
    pub cached_host_check_horizon: f64,
    pub enable_notifications: bool,
    pub enable_event_handlers: bool,
    pub global_host_event_handler: Option<String>,
    pub global_service_event_handler: Option<String>,
    pub notification_timeout: u32,
    pub event_handler_timeout: u32,
    pub no_event_handlers_during_downtimes: bool,
}

impl Settings {
    fn from_config(cfg: &Config) -> Self {
        let m = &cfg.main;
        Settings {
            interval_length: m.interval_length as f64,
            max_service_check_spread: m.max_service_check_spread as f64,
            max_host_check_spread: m.max_host_check_spread as f64,
            service_check_timeout: m.service_check_timeout,
            host_check_timeout: m.host_check_timeout,
            timeout_exit_status: m.timeout_exit_status,
            execute_service_checks: m.execute_service_checks,
            execute_host_checks: m.execute_host_checks,
            accept_passive_service_checks: m.accept_passive_service_checks,
            accept_passive_host_checks: m.accept_passive_host_checks,
            check_service_freshness: m.check_service_freshness,
            check_host_freshness: m.check_host_freshness,
            additional_freshness_latency: m.additional_freshness_latency as f64,
            state: StateOptions {
                aggressive_host_checking: m.use_aggressive_host_checking,
                process_perf_data: m.process_performance_data,
                enable_problem_impacts_states_change: false,
            },
            enable_environment_macros: m.enable_environment_macros,
            cached_host_check_horizon: m.cached_host_check_horizon as f64,
            enable_notifications: m.enable_notifications,
            enable_event_handlers: m.enable_event_handlers,
            global_host_event_handler: m.global_host_event_handler.clone(),
            global_service_event_handler: m.global_service_event_handler.clone(),
            notification_timeout: m.notification_timeout,
            event_handler_timeout: m.event_handler_timeout,
            no_event_handlers_during_downtimes: m.no_event_handlers_during_downtimes,
        }
    }
}

/// The hosts and services of one part, scheduled.
pub struct Engine {
    pub scheduler_name: String,
    pub part_id: u32,
    pub epoch: u64,
    pub(super) cfg: Config,
    pub(super) settings: Settings,
    /// Hosts first, then services.
    pub(super) items: Vec<Item>,
    pub(super) hosts_by_name: HashMap<String, u32>,
    pub(super) services_by_name: HashMap<(String, String), u32>,
    /// Due times, earliest first, per poller tag (None: untagged), so that a poller's request
    /// only looks at what it may take.
    queues: HashMap<Option<String>, BinaryHeap<Reverse<(Due, u32)>>>,
    in_flight: HashMap<u64, InFlight>,
    pub(super) next_check_id: u64,
    counters: EventCounters,
    /// Per broker: events not yet fetched. A broker seen for the first time gets the initial
    /// status of everything first.
    broks: HashMap<String, VecDeque<Brok>>,
    next_brok_id: u64,
    rng: u64,
    /// Seconds between freshness checks (Shinken: every 10 ticks).
    last_freshness: f64,
    /// Results consumed since the engine was built (checks done, for metrics and benchmarks).
    results_total: u64,
    /// Items whose state changed since retention last took them ([`Engine::changed_records`]):
    /// indexes, each once, and the per-item flag that keeps them unique.
    dirty: Vec<u32>,
    dirty_mark: Vec<bool>,
    /// The last downtime or comment id given (microsecond timestamps, strictly increasing).
    pub(super) last_ext_id: u64,
    /// Contacts with their notification ways, and escalations (indexes used by items).
    pub(super) contacts: Vec<notify::Contact>,
    pub(super) escalations: Vec<notify::Escalation>,
    /// Notifications and event handlers for reactionners, by id (shared with check ids).
    pub(super) actions: BTreeMap<u64, Action>,
    /// Items holding master notifications (in their `pending_notifications`).
    pub(super) masters: BTreeSet<u32>,
}

/// A due time with a total order (f64 is not `Ord`).
#[derive(Debug, Clone, Copy)]
struct Due(f64);

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for Due {}

impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Due {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// A broker's queue is cut beyond this many events per item (Shinken: 5 x (hosts+services)).
const BROKS_PER_ITEM: usize = 5;

static NO_RUNTIME_MACROS: LazyLock<HashMap<String, String>> = LazyLock::new(HashMap::new);

impl Engine {
    /// Builds the engine for a part. `previous` is the engine being replaced (a reload or a new
    /// part on the same scheduler): hosts and services that are still there keep their state.
    /// `seed` feeds the spread of first checks.
    pub fn new(scheduler_name: &str, part_id: u32, epoch: u64, cfg: Config, now: f64, seed: u64, previous: Option<&Engine>) -> Engine {
        let settings = Settings::from_config(&cfg);
        let mut items = Vec::with_capacity(cfg.count(Kind::Host) + cfg.count(Kind::Service));
        let mut hosts_by_name = HashMap::with_capacity(cfg.count(Kind::Host));
        let directory = super::actions::Directory::new(&cfg);
        for (i, h) in cfg.objects(Kind::Host).iter().enumerate() {
            let idx = items.len() as u32;
            hosts_by_name.insert(h.name().unwrap_or_default().to_string(), idx);
            let mut it = item_from(ItemKind::Host, i as u32, idx, h);
            it.notif = directory.settings(ItemKind::Host, h);
            it.flap = super::actions::flap_settings(ItemKind::Host, h, &cfg.main);
            items.push(it);
        }
        let mut services_by_name = HashMap::with_capacity(cfg.count(Kind::Service));
        for (i, s) in cfg.objects(Kind::Service).iter().enumerate() {
            let Some(&host) = s.get("host_name").and_then(|h| hosts_by_name.get(h)) else {
                continue;
            };
            let idx = items.len() as u32;
            let key = (
                s.get("host_name").unwrap_or_default().to_string(),
                s.get("service_description").unwrap_or_default().to_string(),
            );
            services_by_name.insert(key, idx);
            let mut it = item_from(ItemKind::Service, i as u32, host, s);
            it.notif = directory.settings(ItemKind::Service, s);
            it.flap = super::actions::flap_settings(ItemKind::Service, s, &cfg.main);
            items.push(it);
        }
        let mut engine = Engine {
            scheduler_name: scheduler_name.to_string(),
            part_id,
            epoch,
            cfg,
            settings,
            items,
            hosts_by_name,
            services_by_name,
            queues: HashMap::new(),
            in_flight: HashMap::new(),
            next_check_id: 1,
            counters: EventCounters::default(),
            broks: HashMap::new(),
            next_brok_id: 1,
            rng: seed | 1,
            last_freshness: now,
            results_total: 0,
            dirty: Vec::new(),
            dirty_mark: Vec::new(),
            last_ext_id: 0,
            contacts: directory.contacts,
            escalations: directory.escalations,
            actions: BTreeMap::new(),
            masters: BTreeSet::new(),
        };
        engine.dirty_mark = vec![false; engine.items.len()];
        if let Some(prev) = previous {
            engine.carry_over(prev);
            engine.find_masters();
        }
        for i in 0..engine.items.len() as u32 {
            engine.schedule(i, now, false);
        }
        engine
    }

    /// Keeps the state of hosts and services present in both parts (by name).
    fn carry_over(&mut self, prev: &Engine) -> Vec<u32> {
        let mut carried = Vec::new();
        let mut moved: HashMap<u32, u32> = HashMap::new();
        self.counters = prev.counters;
        self.next_check_id = prev.next_check_id;
        self.results_total = prev.results_total;
        self.last_ext_id = self.last_ext_id.max(prev.last_ext_id);
        for (i, it) in self.items.iter_mut().enumerate() {
            let old = match it.kind {
                ItemKind::Host => {
                    let name = self.cfg.objects(Kind::Host)[it.obj as usize].name().unwrap_or_default();
                    prev.hosts_by_name.get(name)
                }
                ItemKind::Service => {
                    let s = &self.cfg.objects(Kind::Service)[it.obj as usize];
                    let key = (
                        s.get("host_name").unwrap_or_default().to_string(),
                        s.get("service_description").unwrap_or_default().to_string(),
                    );
                    prev.services_by_name.get(&key)
                }
            };
            if let Some(&o) = old {
                let max = it.state.max_check_attempts;
                it.state = prev.items[o as usize].state.clone();
                it.state.max_check_attempts = max;
                it.state.attempt = it.state.attempt.min(max);
                // A check that was out belongs to the old part: schedule afresh.
                it.in_checking = false;
                it.queued = false;
                carried.push(i as u32);
                moved.insert(o, i as u32);
            }
        }
        // Notifications and event handlers waiting or out keep going (ids are shared with
        // checks and carried on, so a result coming back is still recognised).
        for (&id, a) in &prev.actions {
            if let Some(&i) = moved.get(&a.item) {
                let mut a = a.clone();
                a.item = i;
                self.actions.insert(id, a);
            }
        }
        carried
    }

    /// Takes over the states of the items `prev` also had (a new part on the same scheduler:
    /// what is in memory is the freshest) and plans their checks again.
    pub fn adopt(&mut self, prev: &Engine, now: f64) {
        let carried = self.carry_over(prev);
        self.find_masters();
        for i in carried {
            self.schedule(i, now, false);
        }
    }

    /// Restores retained states (semantics §4.4): only the items of this part; the
    /// configuration's `max_check_attempts` and `is_volatile` stay, attributes changed at run
    /// time come back where their MODATTR bit is set; a restored next check in the future is
    /// kept, one in the past is spread again. Event and problem counters are raised above the
    /// restored ids. Returns the number of items restored.
    pub fn restore(&mut self, records: &HashMap<String, crate::retention::Record>, now: f64) -> usize {
        if records.is_empty() {
            return 0;
        }
        let mut restored = 0;
        for i in 0..self.items.len() as u32 {
            let Some(r) = records.get(&self.item_key(i)) else { continue };
            let it = &mut self.items[i as usize];
            if r.state.kind != it.kind {
                continue;
            }
            let max = it.state.max_check_attempts;
            let volatile = it.state.is_volatile;
            it.state = r.state.clone();
            it.state.max_check_attempts = max;
            it.state.is_volatile = volatile;
            it.state.attempt = it.state.attempt.min(max);
            let bits = it.state.modified_attributes;
            if let Some(m) = it.state.modified.as_deref() {
                let set = |bit: u64| bits & bit != 0;
                if let Some(v) = m.active_checks_enabled.filter(|_| set(modattr::ACTIVE_CHECKS_ENABLED)) {
                    it.active_checks_enabled = v;
                }
                if let Some(v) = m.passive_checks_enabled.filter(|_| set(modattr::PASSIVE_CHECKS_ENABLED)) {
                    it.passive_checks_enabled = v;
                }
                if let Some(v) = m.check_interval.filter(|_| set(modattr::NORMAL_CHECK_INTERVAL)) {
                    it.check_interval = v;
                }
                if let Some(v) = m.retry_interval.filter(|_| set(modattr::RETRY_CHECK_INTERVAL)) {
                    it.retry_interval = v;
                }
                if let Some(v) = m.check_command.as_ref().filter(|_| set(modattr::CHECK_COMMAND)) {
                    it.check_command = Some(v.clone());
                }
                if let Some(v) = m.notifications_enabled.filter(|_| set(modattr::NOTIFICATIONS_ENABLED)) {
                    it.notif.notifications_enabled = v;
                }
                if let Some(v) = m.event_handler_enabled.filter(|_| set(modattr::EVENT_HANDLER_ENABLED)) {
                    it.event_handler_enabled = v;
                }
            }
            let s = &it.state;
            self.counters.event_id = self.counters.event_id.max(s.current_event_id).max(s.last_event_id);
            self.counters.problem_id = self.counters.problem_id.max(s.current_problem_id).max(s.last_problem_id);
            let ids = s.downtimes.iter().map(|d| d.id).chain(s.comments.iter().map(|c| c.id));
            self.last_ext_id = ids.fold(self.last_ext_id, u64::max);
            // The check planned from the initial state is replaced by the restored one.
            it.queued = false;
            it.in_checking = false;
            self.schedule(i, now, false);
            restored += 1;
        }
        self.find_masters();
        restored
    }

    pub(super) fn mark_dirty(&mut self, i: u32) {
        if let Some(m) = self.dirty_mark.get_mut(i as usize)
            && !*m
        {
            *m = true;
            self.dirty.push(i);
        }
    }

    /// The retention key of item `i` (`host` or `host/service`).
    pub fn item_key(&self, i: u32) -> String {
        match self.names(i) {
            (h, None) => crate::retention::host_key(&h),
            (h, Some(s)) => crate::retention::service_key(&h, &s),
        }
    }

    /// The retention keys of every item of the part.
    pub fn retention_keys(&self) -> Vec<String> {
        (0..self.items.len() as u32).map(|i| self.item_key(i)).collect()
    }

    fn record(&self, i: u32, now: f64) -> crate::retention::Record {
        crate::retention::Record {
            key: self.item_key(i),
            epoch: self.epoch,
            state: self.items[i as usize].state.clone(),
            saved_at: now,
        }
    }

    /// The records of the items changed since the last call (each once), with this part's epoch.
    pub fn changed_records(&mut self, now: f64) -> Vec<crate::retention::Record> {
        let dirty = std::mem::take(&mut self.dirty);
        let mut out = Vec::with_capacity(dirty.len());
        for i in dirty {
            self.dirty_mark[i as usize] = false;
            out.push(self.record(i, now));
        }
        out
    }

    /// The records of every item (a full save), with this part's epoch.
    pub fn all_records(&mut self, now: f64) -> Vec<crate::retention::Record> {
        for i in std::mem::take(&mut self.dirty) {
            self.dirty_mark[i as usize] = false;
        }
        (0..self.items.len() as u32).map(|i| self.record(i, now)).collect()
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn items(&self) -> &[Item] {
        &self.items
    }

    pub fn host_count(&self) -> usize {
        self.hosts_by_name.len()
    }

    pub fn service_count(&self) -> usize {
        self.services_by_name.len()
    }

    /// Checks handed out and not back yet.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Results consumed so far (kept across a new part).
    pub fn results_total(&self) -> u64 {
        self.results_total
    }

    fn rand01(&mut self) -> f64 {
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        (self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn object(&self, it: &Item) -> &Object {
        let kind = if it.kind == ItemKind::Host { Kind::Host } else { Kind::Service };
        &self.cfg.objects(kind)[it.obj as usize]
    }

    /// Plans the next check of item `i` and queues it. `force` ignores disabled active checks.
    pub(super) fn schedule(&mut self, i: u32, now: f64, force: bool) {
        let rand = self.rand01();
        let it = &self.items[i as usize];
        if it.in_checking {
            return;
        }
        let (spread, execute) = match it.kind {
            ItemKind::Host => (self.settings.max_host_check_spread, self.settings.execute_host_checks),
            ItemKind::Service => (self.settings.max_service_check_spread, self.settings.execute_service_checks),
        };
        let mut input = ScheduleInput::new(it.kind, it.state.state_type, it.check_interval, it.retry_interval);
        input.interval_length = self.settings.interval_length;
        input.max_check_spread = spread;
        input.next_check = it.state.next_check;
        input.active_checks_enabled = it.active_checks_enabled;
        input.execute_checks = execute;
        input.in_checking = it.in_checking;
        input.force = force;
        if force {
            input.force_time = Some(now);
        }
        let period = self.object(it).get("check_period").map(str::to_string);
        let periods = &self.cfg.timeperiods;
        let next = next_check_time(&input, now, rand, |t| match &period {
            Some(p) => periods.next_valid(p, t),
            None => Some(t),
        });
        let Some(next) = next else { return };
        if it.queued && it.state.next_check == next {
            return;
        }
        let tag = it.poller_tag.clone();
        let it = &mut self.items[i as usize];
        // A previous entry at another time is now stale and skipped when popped.
        it.state.next_check = next;
        it.queued = true;
        self.queues.entry(tag).or_default().push(Reverse((Due(next), i)));
    }

    /// Hands out the checks due by `now` that the asking poller may take (exact tag match:
    /// untagged pollers take untagged checks), at most `req.max_actions` (0: no limit).
    /// Internal checks (a host without check command) are answered here, not handed out.
    pub fn get_checks(&mut self, req: &GetChecks, now: f64) -> (Vec<Job>, Events) {
        let mut jobs = Vec::new();
        let mut events = Events::default();
        if req.do_actions {
            jobs = self.get_actions(req, now, &mut events);
        }
        if !req.do_checks {
            return (jobs, events);
        }
        let tags: Vec<Option<String>> = if req.tags.is_empty() {
            vec![None]
        } else {
            req.tags.iter().cloned().map(Some).collect()
        };
        let limit = if req.max_actions == 0 {
            usize::MAX
        } else {
            req.max_actions as usize
        };
        let limit = limit.saturating_add(jobs.len());
        for tag in tags {
            while jobs.len() < limit {
                let Some(queue) = self.queues.get_mut(&tag) else { break };
                let Some(&Reverse((Due(t), i))) = queue.peek() else { break };
                if t > now {
                    break;
                }
                queue.pop();
                // A stale queue entry (the item was rescheduled since) is dropped.
                let it = &mut self.items[i as usize];
                if !it.queued || it.state.next_check != t {
                    continue;
                }
                it.queued = false;
                match self.job_for(i, t, now, &req.worker_name) {
                    Some(job) => {
                        self.items[i as usize].in_checking = true;
                        jobs.push(job)
                    }
                    None => {
                        // Internal check: a host without command is UP.
                        let result = CheckResult {
                            exit_status: 0,
                            output: "Host assumed to be UP".into(),
                            check_time: now,
                            ..CheckResult::default()
                        };
                        self.consume(i, &result, now, &mut events);
                    }
                }
            }
        }
        (jobs, events)
    }

    /// Resolves a command call (`check_tcp!7768`, `notify-by-email`) for item `i`: its
    /// definition's command line with the item's (and the contact's) macros and `runtime` ones.
    pub(super) fn resolve_command(
        &self,
        i: u32,
        call: &str,
        contact: Option<u32>,
        runtime: &HashMap<String, String>,
        env_names: &[&str],
        now: f64,
    ) -> Resolved {
        let it = &self.items[i as usize];
        let (name, args) = macros::split_command_call(call);
        let host_item = &self.items[it.host as usize];
        let host_obj = &self.cfg.objects(Kind::Host)[host_item.obj as usize];
        let svc_obj = (it.kind == ItemKind::Service).then(|| &self.cfg.objects(Kind::Service)[it.obj as usize]);
        let ctx = StateContext {
            base: CommandContext {
                config: &self.cfg,
                host: host_obj,
                service: svc_obj,
                contact: contact.and_then(|c| self.cfg.objects(Kind::Contact).get(c as usize)),
                runtime,
            },
            host: &host_item.state,
            service: svc_obj.map(|_| &it.state),
        };
        let command = self.cfg.objects(Kind::Command).iter().find(|c| c.name() == Some(name.as_str()));
        let menv = MacroEnv {
            resources: &self.cfg.main.resources,
            illegal_output_chars: &self.cfg.main.illegal_macro_output_chars,
            now: now as i64,
        };
        let command_line = match command.and_then(|c| c.get("command_line")) {
            Some(template) => macros::resolve(template, &args, &menv, &ctx),
            // Validation reports an undefined command; run what was written rather than nothing.
            None => call.to_string(),
        };
        let timeout = command
            .and_then(|c| c.get("timeout"))
            .and_then(schema::parse_int)
            .filter(|t| *t > 0)
            .map(|t| t as u32);
        let reactionner_tag = command
            .and_then(|c| c.get("reactionner_tag"))
            .filter(|t| !t.is_empty() && !t.eq_ignore_ascii_case("none"))
            .map(str::to_string);
        let env = if self.settings.enable_environment_macros {
            macros::environment(env_names, &menv, &ctx)
        } else {
            Vec::new()
        };
        Resolved {
            name,
            command_line,
            timeout,
            reactionner_tag,
            env,
        }
    }

    /// Builds the job of item `i`, records it as handed out. `None` for an internal check.
    fn job_for(&mut self, i: u32, t_to_go: f64, now: f64, worker: &str) -> Option<Job> {
        let it = &self.items[i as usize];
        let call = it.check_command.as_deref()?;
        let (name, _) = macros::split_command_call(call);
        if shinken_config::load::BUILTIN_COMMANDS.contains(&name.as_str()) {
            return None;
        }
        let r = self.resolve_command(i, call, None, &NO_RUNTIME_MACROS, ENV_MACROS, now);
        let timeout = r.timeout.unwrap_or(match it.kind {
            ItemKind::Host => self.settings.host_check_timeout,
            ItemKind::Service => self.settings.service_check_timeout,
        });
        let id = self.next_check_id;
        self.next_check_id += 1;
        self.in_flight.insert(
            id,
            InFlight {
                item: i,
                worker: worker.to_string(),
                t_to_go,
                handed_at: now,
                timeout,
            },
        );
        Some(Job {
            id,
            command_line: r.command_line,
            timeout,
            env: r.env,
            t_to_go,
        })
    }

    /// Consumes results from a poller. Unknown checks are rejected (they were requeued as
    /// orphans, or belong to an earlier part).
    pub fn put_results(&mut self, results: &[JobResult], now: f64) -> (Vec<ResultRejected>, Events) {
        let mut rejected = Vec::new();
        let mut events = Events::default();
        for r in results {
            if self.action_result(r, now, &mut events) {
                continue;
            }
            let Some(f) = self.in_flight.remove(&r.id) else {
                rejected.push(ResultRejected::UnknownCheck(r.id));
                continue;
            };
            let it = &self.items[f.item as usize];
            let (exit_status, output) = match r.status {
                JobStatus::Timeout => {
                    let what = if it.kind == ItemKind::Host { "Host" } else { "Service" };
                    (self.settings.timeout_exit_status, format!("({what} Check Timed Out)"))
                }
                JobStatus::Done => (r.exit_status, r.output.clone()),
            };
            let result = CheckResult {
                exit_status,
                output,
                long_output: if r.status == JobStatus::Timeout {
                    String::new()
                } else {
                    r.long_output.clone()
                },
                perf_data: r.perf_data.clone(),
                check_time: r.start_time,
                execution_time: r.execution_time,
                latency: (r.start_time - f.t_to_go).max(0.0),
                ..CheckResult::default()
            };
            self.items[f.item as usize].in_checking = false;
            self.consume(f.item, &result, now, &mut events);
        }
        (rejected, events)
    }

    /// A passive result (`PROCESS_SERVICE_CHECK_RESULT`...). Refused when passive checks are off
    /// for the item or globally.
    pub fn passive_result(
        &mut self,
        host: &str,
        service: Option<&str>,
        exit_status: u8,
        output: &str,
        time: f64,
        now: f64,
    ) -> Result<Events, String> {
        let i = match service {
            None => *self.hosts_by_name.get(host).ok_or_else(|| format!("unknown host '{host}'"))?,
            Some(s) => *self
                .services_by_name
                .get(&(host.to_string(), s.to_string()))
                .ok_or_else(|| format!("unknown service '{host}/{s}'"))?,
        };
        let it = &self.items[i as usize];
        let global = if it.kind == ItemKind::Host {
            self.settings.accept_passive_host_checks
        } else {
            self.settings.accept_passive_service_checks
        };
        if !global || !it.passive_checks_enabled {
            return Err("passive checks are disabled".into());
        }
        let (first, rest) = output.split_once('|').unwrap_or((output, ""));
        let result = CheckResult {
            exit_status,
            output: first.trim().to_string(),
            perf_data: rest.trim().to_string(),
            check_time: time,
            passive: true,
            ..CheckResult::default()
        };
        let mut events = Events::default();
        self.consume(i, &result, now, &mut events);
        Ok(events)
    }

    /// Applies a result to item `i`: state machine, alert, broks, next check, and the on-demand
    /// host check Nagios runs when a service of an unchecked-lately host fails.
    fn consume(&mut self, i: u32, result: &CheckResult, now: f64, events: &mut Events) {
        let settings_state = self.settings.state;
        let it = &mut self.items[i as usize];
        let transition = apply_result(&mut it.state, result, now, &settings_state);
        if transition.ignored {
            return;
        }
        if transition.acknowledgement_removed {
            // Removing an acknowledgement deletes its non-persistent comments (semantics 3.9).
            it.state.comments.retain(|c| c.entry_type != 4 || c.persistent);
        }
        // Read by the next result: a check that ran inside a downtime.
        it.state.in_scheduled_downtime_during_last_check = it.state.scheduled_downtime_depth > 0;
        self.results_total += 1;
        if result.passive {
            it.state.check_type = CheckType::Passive;
        }
        self.counters.assign(&mut it.state, transition.ids);
        let kind = it.kind;
        let host = it.host;
        let failed = !it.state.state.is_ok_up();
        self.mark_dirty(i);
        let (host_name, desc) = self.names(i);
        if let Some(alert) = &transition.alert {
            let line = alert.format(&host_name, desc.as_deref().unwrap_or(""));
            self.push_brok("log", serde_json::json!({ "log": line }));
            events.log.push(line);
        }
        let brok_kind = if kind == ItemKind::Host {
            "host_check_result"
        } else {
            "service_check_result"
        };
        let mut data = self.status_json(i);
        // The result's timings, for the broker's latency and execution time histograms.
        if let Some(o) = data.as_object_mut() {
            let st = &self.items[i as usize].state;
            o.insert("latency".into(), serde_json::json!(st.latency));
            o.insert("execution_time".into(), serde_json::json!(st.execution_time));
        }
        self.push_brok(brok_kind, data);
        // Notifications and the event handler (semantics §3.6, §3.7, §3.8).
        if transition.cancel_pending_notifications {
            self.cancel_notifications(i);
        }
        self.flapping(i, transition.state_changed, now, events);
        if let Some(n) = transition.notify {
            let ty = match n {
                super::state::NotificationKind::Problem => notify::NotificationType::Problem,
                super::state::NotificationKind::Recovery => notify::NotificationType::Recovery,
            };
            self.raise_notification(i, ty, now, events);
        }
        if transition.run_event_handler {
            self.raise_event_handler(i, now, events);
        }
        // Next regular check.
        self.schedule(i, now, false);
        // On-demand host check: a failing service whose host was not checked within the
        // cache horizon gets its host checked now.
        if kind == ItemKind::Service && failed {
            let h = &self.items[host as usize];
            if !h.in_checking && now - h.state.last_check > self.settings.cached_host_check_horizon && h.check_command.is_some() {
                self.schedule(host, now, true);
            }
        }
    }

    /// Host name and service description of item `i`.
    pub(super) fn names(&self, i: u32) -> (String, Option<String>) {
        let it = &self.items[i as usize];
        let host_obj = &self.cfg.objects(Kind::Host)[self.items[it.host as usize].obj as usize];
        let host = host_obj.name().unwrap_or_default().to_string();
        let desc = (it.kind == ItemKind::Service).then(|| {
            self.cfg.objects(Kind::Service)[it.obj as usize]
                .get("service_description")
                .unwrap_or_default()
                .to_string()
        });
        (host, desc)
    }

    /// Once a second or so: hands orphaned checks out again, forces stale passive items, starts
    /// and expires downtimes.
    pub fn tick(&mut self, now: f64) -> Events {
        let mut events = Events::default();
        self.update_downtimes(now, &mut events);
        self.scatter_due(now, &mut events);
        self.requeue_orphan_actions(now, &mut events);
        // Orphans (semantics 3.1): out for longer than the item's time_to_orphanage.
        let mut orphans: Vec<(u64, u32, String)> = Vec::new();
        for (&id, f) in &self.in_flight {
            let ttl = self.items[f.item as usize].time_to_orphanage;
            if ttl > 0.0 && now - f.handed_at > ttl.max(f.timeout as f64) {
                orphans.push((id, f.item, f.worker.clone()));
            }
        }
        if !orphans.is_empty() {
            let mut by_worker: HashMap<String, usize> = HashMap::new();
            for (id, item, worker) in orphans {
                self.in_flight.remove(&id);
                *by_worker.entry(worker).or_default() += 1;
                let it = &mut self.items[item as usize];
                it.in_checking = false;
                it.queued = true;
                it.state.next_check = now;
                let tag = it.poller_tag.clone();
                self.queues.entry(tag).or_default().push(Reverse((Due(now), item)));
            }
            for (worker, n) in by_worker {
                events.log.push(format!(
                    "{n} checks never came back for the satellite '{worker}'. I reenable them for polling"
                ));
            }
        }
        // Freshness (every 10 s).
        if now - self.last_freshness >= 10.0 {
            self.last_freshness = now;
            for i in 0..self.items.len() as u32 {
                let it = &self.items[i as usize];
                let global = if it.kind == ItemKind::Host {
                    self.settings.check_host_freshness
                } else {
                    self.settings.check_service_freshness
                };
                let obj = self.object(it);
                let in_period = obj.get("check_period").is_none_or(|p| self.cfg.timeperiods.is_valid(p, now as i64));
                let input = FreshnessInput {
                    check_freshness: it.check_freshness,
                    freshness_threshold: it.freshness_threshold,
                    global_check_freshness: global,
                    passive_checks_enabled: it.passive_checks_enabled,
                    active_checks_enabled: it.active_checks_enabled,
                    in_checking: it.in_checking,
                    in_check_period: in_period,
                    last_state_update: it.state.last_state_update,
                    additional_freshness_latency: self.settings.additional_freshness_latency,
                };
                if is_stale(&input, now) {
                    let (h, s) = self.names(i);
                    events.log.push(stale_log_line(
                        &h,
                        s.as_deref(),
                        it.state.last_state_update,
                        it.freshness_threshold,
                        now,
                    ));
                    self.schedule(i, now, true);
                }
            }
        }
        events
    }

    /// Events queued for `broker`; a broker seen for the first time gets every item's status
    /// first (Shinken's initial broks).
    pub fn get_broks(&mut self, broker: &str) -> Vec<Brok> {
        if !self.broks.contains_key(broker) {
            let initial = self.initial_broks();
            self.broks.insert(broker.to_string(), initial.into());
        }
        self.broks.get_mut(broker).map(|q| q.drain(..).collect()).unwrap_or_default()
    }

    /// Rebuilds the full status for `broker` (Shinken's `fill_initial_broks`).
    pub fn fill_initial_broks(&mut self, broker: &str) {
        let initial = self.initial_broks();
        self.broks.insert(broker.to_string(), initial.into());
    }

    fn initial_broks(&mut self) -> Vec<Brok> {
        let mut out = Vec::with_capacity(self.items.len() + 2);
        out.push(self.make_brok(
            "program_status",
            serde_json::json!({ "scheduler": self.scheduler_name, "part_id": self.part_id, "epoch": self.epoch }),
        ));
        for i in 0..self.items.len() as u32 {
            let kind = if self.items[i as usize].kind == ItemKind::Host {
                "initial_host_status"
            } else {
                "initial_service_status"
            };
            let data = self.status_json(i);
            out.push(self.make_brok(kind, data));
        }
        out.push(self.make_brok("initial_broks_done", serde_json::json!({ "scheduler": self.scheduler_name })));
        out
    }

    fn make_brok(&mut self, kind: &str, data: serde_json::Value) -> Brok {
        let id = self.next_brok_id;
        self.next_brok_id += 1;
        Brok {
            id,
            kind: kind.to_string(),
            data,
        }
    }

    pub(super) fn push_brok(&mut self, kind: &str, data: serde_json::Value) {
        if self.broks.is_empty() {
            return;
        }
        let brok = self.make_brok(kind, data);
        let cap = BROKS_PER_ITEM * self.items.len().max(1);
        for q in self.broks.values_mut() {
            if q.len() >= cap {
                // Shinken cuts the newest; we drop the oldest, so a slow broker sees recent state.
                q.pop_front();
            }
            q.push_back(brok.clone());
        }
    }

    pub(super) fn status_json(&self, i: u32) -> serde_json::Value {
        serde_json::to_value(self.item_status(i)).unwrap_or_default()
    }

    /// One item as status reports show it.
    pub fn item_status(&self, i: u32) -> ItemStatus {
        let it = &self.items[i as usize];
        let (host_name, service_description) = self.names(i);
        let s = &it.state;
        ItemStatus {
            host_name,
            service_description,
            state: s.state.as_str().to_string(),
            state_type: s.state_type.as_str().to_string(),
            attempt: s.attempt,
            max_check_attempts: s.max_check_attempts,
            last_check: s.has_been_checked.then_some(s.last_check),
            output: s.output.clone(),
            long_output: s.long_output.clone(),
            perf_data: s.perf_data.clone(),
            acknowledged: s.problem_has_been_acknowledged,
            in_downtime: s.scheduled_downtime_depth > 0,
            scheduler: self.scheduler_name.clone(),
        }
    }

    /// Every host and service of the part.
    pub fn status(&self) -> SchedulerStatus {
        let mut st = SchedulerStatus {
            name: self.scheduler_name.clone(),
            part_id: Some(self.part_id),
            epoch: self.epoch,
            ..Default::default()
        };
        for i in 0..self.items.len() as u32 {
            let s = self.item_status(i);
            if self.items[i as usize].kind == ItemKind::Host {
                st.hosts.push(s);
            } else {
                st.services.push(s);
            }
        }
        st
    }

    /// The state of one host or service, by name.
    pub fn find(&self, host: &str, service: Option<&str>) -> Option<&ItemState> {
        let i = match service {
            None => *self.hosts_by_name.get(host)?,
            Some(s) => *self.services_by_name.get(&(host.to_string(), s.to_string()))?,
        };
        Some(&self.items[i as usize].state)
    }
}

/// Macros exported as `NAGIOS_*` environment variables when `enable_environment_macros` is on.
pub(super) const ENV_MACROS: &[&str] = &[
    "HOSTNAME",
    "HOSTALIAS",
    "HOSTADDRESS",
    "HOSTSTATE",
    "HOSTSTATETYPE",
    "HOSTATTEMPT",
    "HOSTOUTPUT",
    "SERVICEDESC",
    "SERVICESTATE",
    "SERVICESTATETYPE",
    "SERVICEATTEMPT",
    "SERVICEOUTPUT",
];

/// Configuration macros from the objects, runtime ones (states, outputs) from the engine.
struct StateContext<'a> {
    base: CommandContext<'a>,
    host: &'a ItemState,
    service: Option<&'a ItemState>,
}

impl MacroContext for StateContext<'_> {
    fn value(&self, name: &str) -> Option<String> {
        let h = self.host;
        let runtime = match name {
            "HOSTSTATE" => Some(h.state.as_str().to_string()),
            "HOSTSTATEID" => Some(h.state.id().to_string()),
            "LASTHOSTSTATE" => Some(h.last_state.as_str().to_string()),
            "LASTHOSTSTATEID" => Some(h.last_state.id().to_string()),
            "HOSTSTATETYPE" => Some(h.state_type.as_str().to_string()),
            "HOSTATTEMPT" => Some(h.attempt.to_string()),
            "HOSTOUTPUT" => Some(h.output.clone()),
            "LONGHOSTOUTPUT" => Some(h.long_output.clone()),
            "HOSTPERFDATA" => Some(h.perf_data.clone()),
            "LASTHOSTCHECK" => Some((h.last_check as i64).to_string()),
            "LASTHOSTSTATECHANGE" => Some((h.last_state_change as i64).to_string()),
            "HOSTLATENCY" => Some(format!("{:.3}", h.latency)),
            "HOSTEXECUTIONTIME" => Some(format!("{:.3}", h.execution_time)),
            "HOSTEVENTID" => Some(h.current_event_id.to_string()),
            "HOSTPROBLEMID" => Some(h.current_problem_id.to_string()),
            _ => None,
        };
        if runtime.is_some() {
            return runtime;
        }
        if let Some(s) = self.service {
            let v = match name {
                "SERVICESTATE" => Some(s.state.as_str().to_string()),
                "SERVICESTATEID" => Some(s.state.id().to_string()),
                "LASTSERVICESTATE" => Some(s.last_state.as_str().to_string()),
                "LASTSERVICESTATEID" => Some(s.last_state.id().to_string()),
                "SERVICESTATETYPE" => Some(s.state_type.as_str().to_string()),
                "SERVICEATTEMPT" => Some(s.attempt.to_string()),
                "SERVICEOUTPUT" => Some(s.output.clone()),
                "LONGSERVICEOUTPUT" => Some(s.long_output.clone()),
                "SERVICEPERFDATA" => Some(s.perf_data.clone()),
                "LASTSERVICECHECK" => Some((s.last_check as i64).to_string()),
                "LASTSERVICESTATECHANGE" => Some((s.last_state_change as i64).to_string()),
                "SERVICELATENCY" => Some(format!("{:.3}", s.latency)),
                "SERVICEEXECUTIONTIME" => Some(format!("{:.3}", s.execution_time)),
                "SERVICEEVENTID" => Some(s.current_event_id.to_string()),
                "SERVICEPROBLEMID" => Some(s.current_problem_id.to_string()),
                _ => None,
            };
            if v.is_some() {
                return v;
            }
        }
        self.base.value(name)
    }

    fn on_demand(&self, name: &str, host: &str, service: Option<&str>) -> Option<String> {
        self.base.on_demand(name, host, service)
    }
}

/// An item from its resolved definition, with Shinken's defaults (semantics 6.11).
fn item_from(kind: ItemKind, obj: u32, host: u32, o: &Object) -> Item {
    let num = |k: &str, d: f64| o.get(k).and_then(|v| v.trim().parse::<f64>().ok()).unwrap_or(d);
    let flag = |k: &str, d: bool| o.get(k).and_then(schema::parse_bool).unwrap_or(d);
    let max = num("max_check_attempts", 1.0).max(1.0) as u32;
    let mut state = ItemState::new(kind, max);
    state.is_volatile = kind == ItemKind::Service && flag("is_volatile", false);
    if let Ok(s) = state.clone().with_initial(o.get("initial_state"), o.get("initial_output")) {
        state = s;
    }
    Item {
        kind,
        obj,
        host,
        state,
        check_interval: num("check_interval", 0.0),
        retry_interval: num("retry_interval", 0.0),
        active_checks_enabled: flag("active_checks_enabled", true),
        passive_checks_enabled: flag("passive_checks_enabled", true),
        check_freshness: flag("check_freshness", false),
        freshness_threshold: num("freshness_threshold", 0.0),
        time_to_orphanage: num("time_to_orphanage", 300.0),
        check_command: o.get("check_command").filter(|c| !c.is_empty()).map(str::to_string),
        poller_tag: o
            .get("poller_tag")
            .filter(|t| !t.is_empty() && !t.eq_ignore_ascii_case("none"))
            .map(str::to_string),
        queued: false,
        in_checking: false,
        notif: NotifSettings::default(),
        event_handler: o.get("event_handler").filter(|c| !c.is_empty()).map(str::to_string),
        event_handler_enabled: flag("event_handler_enabled", false),
        flap: notify::FlapSettings::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::JobStatus;
    use crate::scheduler::state::{State, StateType};

    const CFG: &str = "
interval_length=1
max_service_check_spread=1
max_host_check_spread=1
$USER1$=/usr/lib/nagios/plugins
define command {
    command_name check_dummy
    command_line $USER1$/check_dummy $ARG1$ '$HOSTNAME$/$SERVICEDESC$ was $SERVICESTATE$'
}
define timeperiod {
    timeperiod_name never
    alias never
}
define host {
    host_name web
    address 127.0.0.1
    max_check_attempts 1
    time_to_orphanage 30
}
define service {
    host_name web
    service_description HTTP
    check_command check_dummy!2
    check_interval 60
    retry_interval 10
    max_check_attempts 3
    time_to_orphanage 30
}
define service {
    host_name web
    service_description Tagged
    check_command check_dummy!0
    check_interval 60
    retry_interval 10
    poller_tag DMZ
}
define service {
    host_name web
    service_description Never
    check_command check_dummy!0
    check_interval 60
    retry_interval 10
    check_period never
}
";

    /// Tests run at realistic times: a next check of 0 means "never scheduled".
    const T: f64 = 1_700_000_000.0;

    fn engine(now: f64) -> Engine {
        let cfg = shinken_config::load::from_part_text(CFG);
        assert!(!cfg.has_errors(), "{:?}", cfg.diag.problems());
        Engine::new("sched", 0, 1, cfg, now, 42, None)
    }

    fn ask(tags: &[&str]) -> GetChecks {
        GetChecks {
            do_checks: true,
            tags: tags.iter().map(|t| t.to_string()).collect(),
            worker_name: "p1".into(),
            ..Default::default()
        }
    }

    fn done(id: u64, exit: u8, out: &str, t: f64) -> JobResult {
        JobResult {
            id,
            status: JobStatus::Done,
            exit_status: exit,
            output: out.into(),
            long_output: String::new(),
            perf_data: String::new(),
            start_time: t,
            execution_time: 0.01,
        }
    }

    #[test]
    fn first_checks_are_spread_and_tags_match_exactly() {
        let mut e = engine(T + 1000.0);
        // Spread is 1 unit of 1 s: nothing due before 1000 + 1.
        let (jobs, _) = e.get_checks(&ask(&[]), T + 999.0);
        assert!(jobs.is_empty());
        let (jobs, _) = e.get_checks(&ask(&[]), T + 1002.0);
        // HTTP only: the host is internal, Tagged needs DMZ, Never has no valid time.
        assert_eq!(jobs.len(), 1, "{jobs:?}");
        assert_eq!(jobs[0].command_line, "/usr/lib/nagios/plugins/check_dummy 2 'web/HTTP was PENDING'");
        assert_eq!(jobs[0].timeout, 60);
        let (tagged, _) = e.get_checks(&ask(&["DMZ-2"]), T + 1002.0);
        assert!(tagged.is_empty(), "tags match exactly, not as substrings");
        let (tagged, _) = e.get_checks(&ask(&["DMZ"]), T + 1002.0);
        assert_eq!(tagged.len(), 1);
        // The internal host check ran: UP.
        assert_eq!(e.find("web", None).unwrap().state, State::Up);
        assert!(e.find("web", Some("Never")).unwrap().next_check == 0.0);
    }

    #[test]
    fn soft_then_hard_with_retry_spacing_then_recovery() {
        let mut e = engine(T);
        let mut now = T + 2.0;
        let mut results = Vec::new();
        let mut last_planned = 0.0;
        for attempt in 1..=3 {
            let (jobs, _) = e.get_checks(&ask(&[]), now);
            let job = jobs.iter().find(|j| j.command_line.contains("HTTP")).expect("HTTP due");
            last_planned = job.t_to_go;
            let (rej, ev) = e.put_results(&[done(job.id, 2, "CRITICAL: down", now)], now);
            assert!(rej.is_empty());
            let st = e.find("web", Some("HTTP")).unwrap();
            assert_eq!(st.attempt, attempt);
            results.push((st.state_type, ev.log.clone()));
            // Retry interval 10 s while SOFT: the next check is 10 s after the planned one.
            if attempt < 3 {
                assert_eq!(st.state_type, StateType::Soft);
                assert_eq!(st.next_check, (job.t_to_go + 10.0).trunc());
            }
            now = st.next_check;
        }
        assert_eq!(results[2].0, StateType::Hard);
        assert_eq!(results[2].1, ["SERVICE ALERT: web;HTTP;CRITICAL;HARD;3;CRITICAL: down"]);
        let st = e.find("web", Some("HTTP")).unwrap();
        assert_eq!(st.next_check, last_planned + 60.0, "check_interval once HARD");
        // Recovery.
        let now = st.next_check;
        let (jobs, _) = e.get_checks(&ask(&[]), now);
        let (_, ev) = e.put_results(&[done(jobs[0].id, 0, "OK", now)], now);
        assert_eq!(
            ev.log,
            ["SERVICE ALERT: web;HTTP;OK;HARD;3;OK"],
            "the recovery logs the attempt it recovers from, as Shinken and Nagios"
        );
    }

    #[test]
    fn timeouts_and_unknown_results() {
        let mut e = engine(T);
        let (jobs, _) = e.get_checks(&ask(&[]), T + 5.0);
        let mut r = done(jobs[0].id, 3, "", T + 5.0);
        r.status = JobStatus::Timeout;
        e.put_results(&[r], T + 6.0);
        let st = e.find("web", Some("HTTP")).unwrap();
        assert_eq!(st.output, "(Service Check Timed Out)");
        assert_eq!(st.state, State::Critical, "timeout_exit_status 2");
        let (rej, _) = e.put_results(&[done(jobs[0].id, 0, "late", T + 7.0)], T + 7.0);
        assert_eq!(rej, [ResultRejected::UnknownCheck(jobs[0].id)]);
    }

    #[test]
    fn orphans_are_handed_out_again() {
        let mut e = engine(T);
        let (jobs, _) = e.get_checks(&ask(&[]), T + 5.0);
        assert_eq!(jobs.len(), 1);
        assert!(e.tick(T + 20.0).log.is_empty());
        let ev = e.tick(T + 100.0);
        assert_eq!(
            ev.log,
            ["1 checks never came back for the satellite 'p1'. I reenable them for polling"]
        );
        let (again, _) = e.get_checks(&ask(&[]), T + 100.0);
        assert_eq!(again.len(), 1);
        assert_ne!(again[0].id, jobs[0].id);
    }

    #[test]
    fn a_failing_service_triggers_its_host_check_and_broks_flow() {
        let text = CFG.replace(
            "    max_check_attempts 1\n    time_to_orphanage 30\n}",
            "    max_check_attempts 1\n    time_to_orphanage 30\n    check_command check_dummy!0\n}",
        );
        let cfg = shinken_config::load::from_part_text(&text);
        let mut e = Engine::new("sched", 0, 1, cfg, T, 7, None);
        let initial = e.get_broks("broker-1");
        assert_eq!(initial.first().map(|b| b.kind.as_str()), Some("program_status"));
        assert_eq!(initial.iter().filter(|b| b.kind == "initial_service_status").count(), 3);
        // Take the host's first check and answer it, so the host is not in checking.
        let (jobs, _) = e.get_checks(&ask(&[]), T + 5.0);
        let host_job = jobs.iter().find(|j| !j.command_line.contains("HTTP")).unwrap().id;
        let svc_job = jobs.iter().find(|j| j.command_line.contains("HTTP")).unwrap().id;
        e.put_results(&[done(host_job, 0, "UP", T + 5.0)], T + 5.0);
        e.put_results(&[done(svc_job, 2, "CRITICAL", T + 6.0)], T + 6.0);
        // The host is due now again, forced by the failing service.
        let (jobs, _) = e.get_checks(&ask(&[]), T + 6.0);
        assert_eq!(jobs.len(), 1, "{jobs:?}");
        let broks = e.get_broks("broker-1");
        assert!(
            broks
                .iter()
                .any(|b| b.kind == "service_check_result" && b.data["state"] == "CRITICAL")
        );
        assert!(broks.iter().any(|b| b.kind == "log"));
        assert!(e.get_broks("broker-1").is_empty());
    }

    #[test]
    fn a_new_part_keeps_the_states_of_known_items() {
        let mut e = engine(T);
        let (jobs, _) = e.get_checks(&ask(&[]), T + 5.0);
        e.put_results(&[done(jobs[0].id, 2, "CRITICAL", T + 5.0)], T + 5.0);
        let cfg = shinken_config::load::from_part_text(CFG);
        let e2 = Engine::new("sched", 0, 2, cfg, T + 6.0, 1, Some(&e));
        let st = e2.find("web", Some("HTTP")).unwrap();
        assert_eq!((st.state, st.attempt, st.output.as_str()), (State::Critical, 1, "CRITICAL"));
        assert_eq!(e2.epoch, 2);
    }

    #[test]
    fn passive_results() {
        let mut e = engine(T);
        e.passive_result("web", Some("HTTP"), 1, "WARNING: slow | t=2s", T + 3.0, T + 3.0)
            .unwrap();
        let st = e.find("web", Some("HTTP")).unwrap();
        assert_eq!((st.state, st.perf_data.as_str()), (State::Warning, "t=2s"));
        assert!(e.passive_result("nope", None, 0, "", T + 3.0, T + 3.0).is_err());
    }
}
