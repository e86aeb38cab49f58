//! The receiver (semantics reference, 1.5): takes external commands in Nagios syntax and routes
//! each to the scheduler that owns the host it names (`direct_routing`).
//!
//! Commands come in through `POST /v1/run_external_commands` (token required, body
//! `{"commands": ["[ts] COMMAND;arg;...", ...]}`, one [`RoutedCommand`] back per line, in order)
//! and through the named pipes of the receiver's `named_pipe` modules ([`super::command_pipe`]).
//!
//! Routing ([`super::routing`]): the receiver checks the line (form, command, argument count),
//! then finds the part holding the host. The arbiter gives the receiver its scheduler links
//! (part, epoch, URL) but not the hosts of each part, and it has no command endpoint to route
//! through; so the receiver learns the hosts itself, from each scheduler's `GET /v1/status` (not
//! `what_i_managed`: that call is the arbiter's and resets the scheduler's fencing timer). The
//! host map is refreshed when a part's epoch differs from the one it was read at, and when a
//! command names a host not in the map (at most once every [`MIN_REFRESH`]). A command without
//! a host (`DEL_*_DOWNTIME`, `DEL_*_COMMENT`) goes to every scheduler and is accepted when one
//! accepts it. Lines for one scheduler travel in one call, in their order; schedulers are called
//! concurrently. A scheduler that cannot be reached, or refuses (no part, fenced, unknown service,
//! bad number...), makes the command fail with its reason; nothing is queued for later.
//!
//! Every command gives one log line: `EXTERNAL COMMAND: <line>` (without the timestamp) when
//! accepted, a warning with the reason when refused.

use super::link;
use super::routing::{self, Parsed, RouteError};
use crate::messages::{CommandOutcome, ExternalCommands, RoutedCommand, SatelliteConf, SchedulerLink, SchedulerStatus};
use crate::protocol::{Client, Token};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

/// The shortest time between two reads of the schedulers' hosts.
pub const MIN_REFRESH: Duration = Duration::from_secs(1);

/// Part -> (scheduler name, client), as a batch of commands needs them.
type Clients = BTreeMap<u32, (String, Client)>;

/// One scheduler link and its client.
struct Link {
    link: SchedulerLink,
    client: Client,
}

#[derive(Default)]
struct State {
    links: BTreeMap<u32, Link>,
    /// Host name -> part holding it.
    hosts: HashMap<String, u32>,
    /// Part -> the epoch its hosts were read at.
    read_at: BTreeMap<u32, u64>,
    last_refresh: Option<Instant>,
}

impl State {
    fn parts(&self) -> Vec<u32> {
        self.links.keys().copied().collect()
    }

    /// Whether the host map must be read again before routing commands naming `hosts`.
    fn stale<'a>(&self, mut hosts: impl Iterator<Item = &'a str>) -> bool {
        if self.links.is_empty() {
            return false;
        }
        if self.last_refresh.is_some_and(|t| t.elapsed() < MIN_REFRESH) {
            return false;
        }
        self.links.iter().any(|(p, l)| self.read_at.get(p) != Some(&l.link.epoch)) || hosts.any(|h| !self.hosts.contains_key(h))
    }
}

/// A receiver's state.
pub struct Receiver {
    me: String,
    token: Token,
    state: Mutex<State>,
    /// One refresh of the host map at a time.
    refreshing: tokio::sync::Mutex<()>,
    accepted: AtomicU64,
    refused: AtomicU64,
    /// Stops the pipe readers.
    stop: watch::Sender<bool>,
    pipes: Mutex<Vec<JoinHandle<()>>>,
}

impl Receiver {
    pub fn new(me: String, token: Token) -> Arc<Receiver> {
        Arc::new(Receiver {
            me,
            token,
            state: Mutex::new(State::default()),
            refreshing: tokio::sync::Mutex::new(()),
            accepted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            stop: watch::channel(false).0,
            pipes: Mutex::new(Vec::new()),
        })
    }

    pub fn name(&self) -> &str {
        &self.me
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new configuration (or none): links kept where unchanged, hosts of removed parts dropped.
    pub fn apply(&self, conf: Option<&SatelliteConf>) {
        let mut st = self.lock();
        let mut old = std::mem::take(&mut st.links);
        for l in conf.iter().flat_map(|c| c.schedulers.iter()) {
            let kept = old.remove(&l.part_id).filter(|o| link::same_client(&o.link, l));
            let client = match kept {
                Some(o) => o.client,
                None => match link::client(l, &self.token) {
                    Ok(c) => c,
                    Err(e) => {
                        warn!(
                            "[{}] Scheduler {} (part {}): bad address {}: {e}",
                            self.me, l.name, l.part_id, l.url
                        );
                        continue;
                    }
                },
            };
            info!("[{}] Scheduler {} (part {}) at {}", self.me, l.name, l.part_id, l.url);
            st.links.insert(l.part_id, Link { link: l.clone(), client });
        }
        let parts = st.parts();
        st.hosts.retain(|_, p| parts.contains(p));
        st.read_at.retain(|p, _| parts.contains(p));
        st.last_refresh = None;
    }

    /// `GET /v1/status`: the scheduler links, the hosts known per part, the command counters.
    pub fn status(&self, _conf: Option<&SatelliteConf>) -> serde_json::Value {
        let st = self.lock();
        let schedulers: Vec<serde_json::Value> = st
            .links
            .values()
            .map(|l| {
                let hosts = st.hosts.values().filter(|p| **p == l.link.part_id).count();
                serde_json::json!({
                    "name": l.link.name,
                    "part_id": l.link.part_id,
                    "epoch": l.link.epoch,
                    "url": l.link.url,
                    "hosts": hosts,
                    "hosts_read_at_epoch": st.read_at.get(&l.link.part_id),
                })
            })
            .collect();
        serde_json::json!({
            "schedulers": schedulers,
            "direct_routing": true,
            "commands_accepted": self.accepted.load(Ordering::Relaxed),
            "commands_refused": self.refused.load(Ordering::Relaxed),
        })
    }

    pub fn metrics(&self) -> String {
        format!(
            "# TYPE shinken_receiver_commands_total counter\n\
             shinken_receiver_commands_total{{outcome=\"accepted\"}} {}\n\
             shinken_receiver_commands_total{{outcome=\"refused\"}} {}\n",
            self.accepted.load(Ordering::Relaxed),
            self.refused.load(Ordering::Relaxed)
        )
    }

    /// Reads the hosts of every part from its scheduler (`GET /v1/status`). A scheduler that
    /// does not answer, or holds another part, keeps the hosts read before for its part.
    async fn refresh(&self) {
        let _one = self.refreshing.lock().await;
        if self.lock().last_refresh.is_some_and(|t| t.elapsed() < MIN_REFRESH) {
            // Another caller read it while this one waited.
            return;
        }
        let links: Vec<(SchedulerLink, Client)> = self.lock().links.values().map(|l| (l.link.clone(), l.client.clone())).collect();
        let mut tasks = tokio::task::JoinSet::new();
        for (l, c) in links {
            tasks.spawn(async move {
                let r = c.get::<SchedulerStatus>("status", &[], true).await;
                (l, r)
            });
        }
        let mut read: Vec<(SchedulerLink, SchedulerStatus)> = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            let Ok((l, r)) = joined else { continue };
            match r {
                Ok(s) if s.part_id == Some(l.part_id) => read.push((l, s)),
                Ok(s) => info!(
                    "[{}] Scheduler {} holds part {:?}, not part {}: its hosts are not known yet",
                    self.me, l.name, s.part_id, l.part_id
                ),
                Err(e) => warn!(
                    "[{}] Cannot read the hosts of scheduler {} (part {}): {e}",
                    self.me, l.name, l.part_id
                ),
            }
        }
        let mut st = self.lock();
        st.last_refresh = Some(Instant::now());
        for (l, s) in read {
            // The link may have changed while reading: keep only what still matches.
            if st.links.get(&l.part_id).is_none_or(|cur| cur.link.url != l.url) {
                continue;
            }
            st.hosts.retain(|_, p| *p != l.part_id);
            let n = s.hosts.len();
            for h in s.hosts {
                st.hosts.insert(h.host_name, l.part_id);
            }
            if st.read_at.insert(l.part_id, s.epoch) != Some(s.epoch) {
                info!(
                    "[{}] Part {} (epoch {}) on scheduler {}: {n} hosts",
                    self.me, l.part_id, s.epoch, l.name
                );
            }
        }
    }

    /// Routes command lines (HTTP or pipe): one outcome per line, in order; one log line each.
    pub async fn run_lines(&self, lines: &[String]) -> Vec<RoutedCommand> {
        let parsed: Vec<Result<Parsed, RouteError>> = lines.iter().map(|l| routing::parse(l)).collect();
        let hosts = parsed.iter().filter_map(|p| p.as_ref().ok()?.host.as_deref());
        if self.lock().stale(hosts) {
            self.refresh().await;
        }
        // Each line's destinations, then the lines each part gets, in order.
        let (routes, clients): (Vec<Result<Vec<u32>, RouteError>>, Clients) = {
            let st = self.lock();
            let parts = st.parts();
            let routes = parsed
                .iter()
                .map(|p| {
                    p.as_ref()
                        .map_err(Clone::clone)
                        .and_then(|p| routing::destinations(p, &st.hosts, &parts))
                })
                .collect();
            let clients = st
                .links
                .iter()
                .map(|(p, l)| (*p, (l.link.name.clone(), l.client.clone())))
                .collect();
            (routes, clients)
        };
        let mut batches: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for (i, r) in routes.iter().enumerate() {
            for part in r.iter().flatten() {
                batches.entry(*part).or_default().push(i);
            }
        }
        let mut tasks = tokio::task::JoinSet::new();
        for (part, idx) in batches {
            let Some((name, client)) = clients.get(&part).cloned() else {
                continue;
            };
            let commands: Vec<String> = idx
                .iter()
                .map(|i| parsed[*i].as_ref().map(|p| p.line.clone()).unwrap_or_default())
                .collect();
            tasks.spawn(async move {
                let r = client
                    .post::<_, Vec<CommandOutcome>>("run_external_commands", &ExternalCommands { commands }, true)
                    .await;
                (name, idx, r)
            });
        }
        // Per line: (scheduler, accepted, error) for every scheduler it went to.
        let mut answers: Vec<Vec<(String, Result<(), String>)>> = vec![Vec::new(); lines.len()];
        while let Some(joined) = tasks.join_next().await {
            let Ok((name, idx, r)) = joined else { continue };
            match r {
                Ok(outcomes) => {
                    for (k, i) in idx.iter().enumerate() {
                        let a = match outcomes.get(k) {
                            Some(o) if o.ok => Ok(()),
                            Some(o) => Err(o.error.clone().unwrap_or_else(|| "refused".into())),
                            None => Err("no answer for this command".into()),
                        };
                        answers[*i].push((name.clone(), a));
                    }
                }
                Err(e) => {
                    let why = if link::unreachable(&e) {
                        format!("cannot be reached: {e}")
                    } else {
                        format!("refused the commands: {e}")
                    };
                    for i in idx {
                        answers[i].push((name.clone(), Err(why.clone())));
                    }
                }
            }
        }
        let mut out = Vec::with_capacity(lines.len());
        for ((line, route), (p, mut answer)) in lines.iter().zip(routes).zip(parsed.iter().zip(answers)) {
            answer.sort_by(|a, b| a.0.cmp(&b.0));
            let result = match route {
                Err(e) => Err(e.to_string()),
                Ok(_) => merge(&answer),
            };
            let text = p.as_ref().map(|p| p.text.as_str()).unwrap_or(line.trim());
            out.push(match result {
                Ok(schedulers) => {
                    self.accepted.fetch_add(1, Ordering::Relaxed);
                    info!("[{}] EXTERNAL COMMAND: {text} (to {})", self.me, schedulers.join(", "));
                    RoutedCommand {
                        command: line.clone(),
                        ok: true,
                        schedulers,
                        error: None,
                    }
                }
                Err(why) => {
                    self.refused.fetch_add(1, Ordering::Relaxed);
                    warn!("[{}] External command refused: {text:?}: {why}", self.me);
                    RoutedCommand {
                        command: line.clone(),
                        ok: false,
                        schedulers: Vec::new(),
                        error: Some(why),
                    }
                }
            });
        }
        out
    }

    /// Keeps a pipe reader task, stopped with the receiver.
    pub fn keep_pipe(&self, task: JoinHandle<()>) {
        self.pipes.lock().unwrap_or_else(|e| e.into_inner()).push(task);
    }

    /// A receiver for the pipe readers' stop signal.
    pub fn stop_signal(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }

    /// Stops the pipe readers.
    pub async fn stop(&self) {
        let _ = self.stop.send(true);
        let tasks: Vec<JoinHandle<()>> = std::mem::take(&mut *self.pipes.lock().unwrap_or_else(|e| e.into_inner()));
        for t in tasks {
            let abort = t.abort_handle();
            if tokio::time::timeout(Duration::from_secs(2), t).await.is_err() {
                warn!("[{}] A command pipe reader did not stop in time: aborted", self.me);
                abort.abort();
            }
        }
    }
}

/// The outcome of a line from its schedulers' answers: accepted by those that accepted it,
/// else every refusal with its scheduler's name (one scheduler: its reason alone).
pub fn merge(answers: &[(String, Result<(), String>)]) -> Result<Vec<String>, String> {
    let ok: Vec<String> = answers.iter().filter(|a| a.1.is_ok()).map(|a| a.0.clone()).collect();
    if !ok.is_empty() {
        return Ok(ok);
    }
    match answers {
        [] => Err("no scheduler answered".into()),
        [(name, Err(e))] => Err(format!("scheduler {name}: {e}")),
        _ => Err(answers
            .iter()
            .filter_map(|(n, r)| r.as_ref().err().map(|e| format!("scheduler {n}: {e}")))
            .collect::<Vec<_>>()
            .join("; ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_acceptance_is_enough_for_a_command_sent_everywhere() {
        let a = vec![
            ("s1".to_string(), Err("unknown downtime id 4".to_string())),
            ("s2".to_string(), Ok(())),
        ];
        assert_eq!(merge(&a), Ok(vec!["s2".to_string()]));
        let b = vec![
            ("s1".to_string(), Err("unknown downtime id 4".to_string())),
            ("s2".to_string(), Err("unknown downtime id 4".to_string())),
        ];
        assert_eq!(
            merge(&b),
            Err("scheduler s1: unknown downtime id 4; scheduler s2: unknown downtime id 4".into())
        );
        assert_eq!(
            merge(&[("s1".to_string(), Err("unknown service 'x' on host 'h'".to_string()))]),
            Err("scheduler s1: unknown service 'x' on host 'h'".into())
        );
        assert!(merge(&[]).is_err());
    }

    fn link(part: u32, epoch: u64) -> SchedulerLink {
        SchedulerLink {
            part_id: part,
            epoch,
            name: format!("s{part}"),
            url: format!("http://127.0.0.1:{}", 1000 + part),
            timeout: 1,
            data_timeout: 1,
        }
    }

    #[test]
    fn the_host_map_is_read_again_when_an_epoch_changes_or_a_host_is_missing() {
        let token = Token::new("receiver-unit-test-token-0123456789").unwrap();
        let r = Receiver::new("r".into(), token.clone());
        let mut st = r.lock();
        assert!(!st.stale(["web-1"].into_iter()), "no link: nothing to read");
        let l = link(0, 3);
        let client = link::client(&l, &token).unwrap();
        st.links.insert(0, Link { link: l, client });
        assert!(st.stale(std::iter::empty()), "never read");
        st.read_at.insert(0, 3);
        st.hosts.insert("web-1".into(), 0);
        assert!(!st.stale(["web-1"].into_iter()));
        assert!(st.stale(["db-1"].into_iter()), "unknown host");
        st.last_refresh = Some(Instant::now());
        assert!(!st.stale(["db-1"].into_iter()), "read less than MIN_REFRESH ago");
        st.last_refresh = None;
        st.read_at.insert(0, 2);
        assert!(st.stale(["web-1"].into_iter()), "epoch changed");
    }
}
