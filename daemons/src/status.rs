//! `shinken status PATH [--format text|json] [--token-file F]`: what the cluster says about its
//! daemons, hosts and services.
//!
//! It asks the arbiters of the configuration (all at once; the master's answer first, then the
//! spares', and among those that answer one that leads) for the daemons, and every scheduler of
//! the topology for its hosts and services (`GET /v1/status`, bounded by each definition's
//! `timeout`), skipping unreachable ones with a note on stderr. A host or service reported by two
//! schedulers (a stale holder beside the new one) is listed once, from the scheduler the arbiter
//! says holds its part (else the one with the newest epoch).
//!
//! JSON (other tools rely on it exactly): `{"hosts": [...], "services": [...], "daemons": [...]}`,
//! hosts and services as [`ItemStatus`], daemons as [`DaemonStatus`]. Text: the same as aligned
//! tables. Exit status: 0 when an arbiter answered, 1 when none did (what the schedulers said is
//! still printed), 2 on bad arguments, an unreadable configuration or token.

use crate::messages::{ArbiterStatus, DaemonStatus, ItemStatus, SchedulerStatus};
use crate::protocol::{Client, Token, default_token_path, load_token};
use serde::Serialize;
use shinken_config::daemons::{DaemonDef, Role};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "usage: shinken status PATH [--format text|json] [--token-file F]";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

/// The arguments of `shinken status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusArgs {
    pub path: PathBuf,
    pub format: Format,
    pub token_file: Option<PathBuf>,
}

impl StatusArgs {
    pub fn parse(args: &[String]) -> Result<StatusArgs, String> {
        let mut path = None;
        let mut format = Format::Text;
        let mut token_file = None;
        let mut it = args.iter();
        let parse_format = |v: Option<&str>| match v {
            Some("text") => Ok(Format::Text),
            Some("json") => Ok(Format::Json),
            other => Err(format!("--format takes text or json, not {}", other.unwrap_or("nothing"))),
        };
        while let Some(a) = it.next() {
            match a.as_str() {
                "--format" => format = parse_format(it.next().map(String::as_str))?,
                s if s.starts_with("--format=") => format = parse_format(Some(&s["--format=".len()..]))?,
                "--token-file" => token_file = Some(PathBuf::from(it.next().ok_or("--token-file needs a value")?)),
                s if s.starts_with("--token-file=") => token_file = Some(PathBuf::from(&s["--token-file=".len()..])),
                s if s.starts_with('-') => return Err(format!("unknown option {s}")),
                s if path.is_none() => path = Some(PathBuf::from(s)),
                s => return Err(format!("unexpected argument {s}")),
            }
        }
        Ok(StatusArgs {
            path: path.ok_or("a PATH is required")?,
            format,
            token_file,
        })
    }
}

/// The whole report, as `--format json` prints it.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct Report {
    pub hosts: Vec<ItemStatus>,
    pub services: Vec<ItemStatus>,
    pub daemons: Vec<DaemonStatus>,
}

/// What was gathered, before merging.
#[derive(Debug, Clone, Default)]
pub struct Gathered {
    /// The arbiter whose view is used, if any answered.
    pub arbiter: Option<ArbiterStatus>,
    /// Every scheduler that answered.
    pub schedulers: Vec<SchedulerStatus>,
    /// Who did not answer, and why.
    pub notes: Vec<String>,
}

/// `shinken status`: see the module documentation.
pub fn run(args: &[String]) -> ExitCode {
    let args = match StatusArgs::parse(args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("shinken status: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let cfg = match shinken_config::load(&args.path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("shinken status: cannot read the configuration: {e}");
            return ExitCode::from(2);
        }
    };
    let token_path = args.token_file.clone().unwrap_or_else(|| default_token_path(&cfg.main_file));
    let token = match load_token(&token_path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("shinken status: cannot read the cluster token: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("shinken status: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let gathered = runtime.block_on(gather(&cfg.topology.daemons, &token));
    for n in &gathered.notes {
        eprintln!("shinken status: note: {n}");
    }
    let answered = gathered.arbiter.is_some();
    let report = merge(&gathered);
    let text = match args.format {
        Format::Json => {
            let mut s = serde_json::to_string_pretty(&report).unwrap_or_default();
            s.push('\n');
            s
        }
        Format::Text => render_text(&report, gathered.arbiter.as_ref(), now()),
    };
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
    if answered {
        ExitCode::SUCCESS
    } else {
        eprintln!("shinken status: no arbiter answered");
        ExitCode::FAILURE
    }
}

/// Asks every arbiter and every scheduler at once.
pub async fn gather(daemons: &[DaemonDef], token: &Token) -> Gathered {
    let mut arbiters: Vec<&DaemonDef> = daemons.iter().filter(|d| d.role == Role::Arbiter).collect();
    arbiters.sort_by_key(|d| d.spare);
    let schedulers: Vec<&DaemonDef> = daemons.iter().filter(|d| d.role == Role::Scheduler).collect();

    let arbiter_calls: Vec<_> = arbiters
        .iter()
        .map(|d| tokio::spawn(ask::<ArbiterStatus>((*d).clone(), token.clone())))
        .collect();
    let scheduler_calls: Vec<_> = schedulers
        .iter()
        .map(|d| tokio::spawn(ask::<SchedulerStatus>((*d).clone(), token.clone())))
        .collect();

    let mut g = Gathered::default();
    let mut answers = Vec::new();
    for (d, call) in arbiters.iter().zip(arbiter_calls) {
        match call.await {
            Ok(Ok(a)) => answers.push(a),
            Ok(Err(e)) => g.notes.push(format!("arbiter {} unreachable: {e}", d.name)),
            Err(e) => g.notes.push(format!("arbiter {}: {e}", d.name)),
        }
    }
    // Master first (the order asked), but one that leads over one that does not.
    let leader = answers.iter().position(|a| a.master).unwrap_or(0);
    if !answers.is_empty() {
        g.arbiter = Some(answers.swap_remove(leader));
    }
    for (d, call) in schedulers.iter().zip(scheduler_calls) {
        match call.await {
            Ok(Ok(s)) => g.schedulers.push(s),
            Ok(Err(e)) => g.notes.push(format!("scheduler {} skipped: {e}", d.name)),
            Err(e) => g.notes.push(format!("scheduler {}: {e}", d.name)),
        }
    }
    g
}

/// `GET /v1/status` of one daemon, bounded by its definition's `timeout`.
async fn ask<T: serde::de::DeserializeOwned>(d: DaemonDef, token: Token) -> Result<T, String> {
    let timeout = Duration::from_secs(u64::from(d.timeout.clamp(1, 10)));
    let client = Client::new(&format!("http://{}:{}", d.address, d.port), token, timeout, timeout).map_err(|e| e.to_string())?;
    client.get::<T>("status", &[], false).await.map_err(|e| e.to_string())
}

/// One list of hosts and services, each once; the daemons as the arbiter sees them.
pub fn merge(g: &Gathered) -> Report {
    // Which scheduler holds which part, by the arbiter's word.
    let mut holders: BTreeMap<u32, (u64, &str)> = BTreeMap::new();
    if let Some(a) = &g.arbiter {
        for d in a.daemons.iter().filter(|d| d.role == "scheduler") {
            for (&part, &epoch) in &d.parts {
                let e = holders.entry(part).or_insert((epoch, d.name.as_str()));
                if epoch > e.0 {
                    *e = (epoch, d.name.as_str());
                }
            }
        }
    }
    let holds = |s: &SchedulerStatus| s.part_id.is_some_and(|p| holders.get(&p).is_some_and(|(_, n)| *n == s.name));
    let mut ranked: Vec<&SchedulerStatus> = g.schedulers.iter().collect();
    // The holder first, then the newest epoch.
    ranked.sort_by_key(|s| std::cmp::Reverse((holds(s), s.epoch)));

    let mut hosts: BTreeMap<String, ItemStatus> = BTreeMap::new();
    let mut services: BTreeMap<(String, String), ItemStatus> = BTreeMap::new();
    for s in ranked {
        for h in &s.hosts {
            hosts.entry(h.host_name.clone()).or_insert_with(|| h.clone());
        }
        for sv in &s.services {
            let key = (sv.host_name.clone(), sv.service_description.clone().unwrap_or_default());
            services.entry(key).or_insert_with(|| sv.clone());
        }
    }
    Report {
        hosts: hosts.into_values().collect(),
        services: services.into_values().collect(),
        daemons: g.arbiter.as_ref().map(|a| a.daemons.clone()).unwrap_or_default(),
    }
}

/// The report as aligned tables.
pub fn render_text(report: &Report, arbiter: Option<&ArbiterStatus>, now: f64) -> String {
    let mut out = String::new();
    match arbiter {
        Some(a) => out.push_str(&format!(
            "Arbiter {} ({}), epoch {}\n\n",
            a.name,
            if a.master { "leading" } else { "not leading" },
            a.epoch
        )),
        None => out.push_str("No arbiter answered: daemons unknown\n\n"),
    }
    out.push_str(&format!("Daemons ({})\n", report.daemons.len()));
    let rows: Vec<Vec<String>> = report
        .daemons
        .iter()
        .map(|d| {
            vec![
                d.name.clone(),
                d.role.clone(),
                if d.spare { "spare" } else { "master" }.to_string(),
                if d.alive { "alive" } else { "DEAD" }.to_string(),
                format!("{}:{}", d.address, d.port),
                parts(&d.parts),
            ]
        })
        .collect();
    out.push_str(&table(&["NAME", "ROLE", "TYPE", "ALIVE", "ADDRESS", "PARTS:EPOCH"], &rows));

    out.push_str(&format!("\nHosts ({})\n", report.hosts.len()));
    let rows: Vec<Vec<String>> = report
        .hosts
        .iter()
        .map(|h| {
            vec![
                h.host_name.clone(),
                state(h),
                h.state_type.clone(),
                format!("{}/{}", h.attempt, h.max_check_attempts),
                age(h.last_check, now),
                h.scheduler.clone(),
                first_line(&h.output),
            ]
        })
        .collect();
    out.push_str(&table(
        &["HOST", "STATE", "TYPE", "ATTEMPT", "LAST CHECK", "SCHEDULER", "OUTPUT"],
        &rows,
    ));

    out.push_str(&format!("\nServices ({})\n", report.services.len()));
    let rows: Vec<Vec<String>> = report
        .services
        .iter()
        .map(|s| {
            vec![
                s.host_name.clone(),
                s.service_description.clone().unwrap_or_default(),
                state(s),
                s.state_type.clone(),
                format!("{}/{}", s.attempt, s.max_check_attempts),
                age(s.last_check, now),
                s.scheduler.clone(),
                first_line(&s.output),
            ]
        })
        .collect();
    out.push_str(&table(
        &["HOST", "SERVICE", "STATE", "TYPE", "ATTEMPT", "LAST CHECK", "SCHEDULER", "OUTPUT"],
        &rows,
    ));
    out
}

/// Columns padded to their widest cell (counted in characters); the last one is not padded.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut l = String::new();
        for (i, c) in cells.enumerate() {
            if i > 0 {
                l.push_str("  ");
            }
            l.push_str(c);
            if i + 1 < widths.len() {
                l.extend(std::iter::repeat_n(' ', widths[i].saturating_sub(c.chars().count())));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for r in rows {
        line(&mut r.iter().map(String::as_str));
    }
    out
}

/// `0:3 1:4`, or `-` when none.
fn parts(p: &crate::messages::Managed) -> String {
    if p.is_empty() {
        return "-".into();
    }
    p.iter().map(|(id, e)| format!("{id}:{e}")).collect::<Vec<_>>().join(" ")
}

/// The state, with `(ack)` and `(downtime)` when they apply.
fn state(i: &ItemStatus) -> String {
    let mut s = i.state.clone();
    if i.acknowledged {
        s.push_str(" (ack)");
    }
    if i.in_downtime {
        s.push_str(" (downtime)");
    }
    s
}

/// `12s ago`, `3m ago`, `2h ago`, `4d ago`; `never` when not checked yet.
pub fn age(last_check: Option<f64>, now: f64) -> String {
    let Some(t) = last_check else { return "never".into() };
    let secs = (now - t).max(0.0) as u64;
    match secs {
        0..120 => format!("{secs}s ago"),
        120..7200 => format!("{}m ago", secs / 60),
        7200..172_800 => format!("{}h ago", secs / 3600),
        _ => format!("{}d ago", secs / 86_400),
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").trim_end().to_string()
}

fn now() -> f64 {
    crate::daemon::now()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn item(host: &str, svc: Option<&str>, state: &str, sched: &str) -> ItemStatus {
        // Through JSON, so fields added to ItemStatus with defaults need no change here.
        serde_json::from_value(serde_json::json!({
            "host_name": host,
            "service_description": svc,
            "state": state,
            "state_type": "HARD",
            "attempt": 1,
            "max_check_attempts": 3,
            "last_check": 100.0,
            "output": "out\nlong",
            "acknowledged": false,
            "in_downtime": false,
            "scheduler": sched,
        }))
        .unwrap()
    }

    fn daemon(name: &str, parts: &[(u32, u64)]) -> DaemonStatus {
        DaemonStatus {
            name: name.into(),
            role: "scheduler".into(),
            spare: name.contains("spare"),
            alive: true,
            address: "127.0.0.1".into(),
            port: 7768,
            realm: "All".into(),
            parts: parts.iter().copied().collect(),
        }
    }

    fn sched(name: &str, part: u32, epoch: u64, state: &str) -> SchedulerStatus {
        SchedulerStatus {
            name: name.into(),
            part_id: Some(part),
            epoch,
            hosts: vec![item("h", None, "UP", name)],
            services: vec![item("h", Some("s"), state, name)],
        }
    }

    #[test]
    fn arguments() {
        let a = StatusArgs::parse(&s(&["etc", "--format", "json"])).unwrap();
        assert_eq!(a.format, Format::Json);
        assert_eq!(StatusArgs::parse(&s(&["etc", "--format=text"])).unwrap().format, Format::Text);
        assert!(StatusArgs::parse(&s(&["etc", "--format", "xml"])).is_err());
        assert!(StatusArgs::parse(&s(&[])).is_err());
        assert!(StatusArgs::parse(&s(&["a", "--nope"])).is_err());
    }

    #[test]
    fn a_stale_holder_is_not_listed_twice() {
        // The spare holds part 0 by the arbiter's word; the stale master has an older epoch...
        let g = Gathered {
            arbiter: Some(ArbiterStatus {
                name: "arbiter-master".into(),
                master: true,
                epoch: 5,
                daemons: vec![daemon("scheduler-master", &[]), daemon("scheduler-spare", &[(0, 5)])],
            }),
            schedulers: vec![sched("scheduler-master", 0, 3, "OK"), sched("scheduler-spare", 0, 5, "CRITICAL")],
            notes: vec![],
        };
        let r = merge(&g);
        assert_eq!(r.services.len(), 1);
        assert_eq!(r.services[0].scheduler, "scheduler-spare");
        assert_eq!(r.hosts.len(), 1);
        assert_eq!(r.hosts[0].scheduler, "scheduler-spare");
        // ...and the arbiter's word wins over a newer epoch too.
        let mut g2 = g.clone();
        g2.schedulers[0].epoch = 9;
        assert_eq!(merge(&g2).services[0].scheduler, "scheduler-spare");
        // Without an arbiter, the newest epoch wins.
        g2.arbiter = None;
        let r = merge(&g2);
        assert_eq!(r.services[0].scheduler, "scheduler-master");
        assert!(r.daemons.is_empty());
    }

    #[test]
    fn json_shape() {
        let g = Gathered {
            arbiter: None,
            schedulers: vec![sched("s1", 0, 1, "OK")],
            notes: vec![],
        };
        let v = serde_json::to_value(merge(&g)).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys.len(), 3);
        for k in ["hosts", "services", "daemons"] {
            assert!(v[k].is_array(), "{k}");
        }
        assert!(v["hosts"][0].get("service_description").is_none());
        assert_eq!(v["services"][0]["service_description"], "s");
    }

    #[test]
    fn text_tables_align_and_show_ages() {
        let g = Gathered {
            arbiter: Some(ArbiterStatus {
                name: "arbiter-master".into(),
                master: true,
                epoch: 1,
                daemons: vec![daemon("scheduler-master", &[(0, 1)])],
            }),
            schedulers: vec![sched("scheduler-master", 0, 1, "CRITICAL")],
            notes: vec![],
        };
        let text = render_text(&merge(&g), g.arbiter.as_ref(), 112.0);
        assert!(text.contains("12s ago"), "{text}");
        assert!(text.contains("0:1"), "{text}");
        assert!(!text.contains("long"), "{text}");
        let lines: Vec<&str> = text.lines().collect();
        let header = lines.iter().position(|l| l.starts_with("HOST  ") && l.contains("SERVICE")).unwrap();
        let col = lines[header].find("STATE").unwrap();
        assert_eq!(&lines[header + 1][col..col + 8], "CRITICAL");
    }

    #[test]
    fn ages() {
        assert_eq!(age(None, 10.0), "never");
        assert_eq!(age(Some(10.0), 10.4), "0s ago");
        assert_eq!(age(Some(0.0), 300.0), "5m ago");
        assert_eq!(age(Some(0.0), 3.0 * 86_400.0), "3d ago");
    }
}
