//! The broker's Prometheus metrics drawn from its live view (text exposition format 0.0.4).
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | `shinken_broker_hosts_by_state` | gauge | `state` (UP, DOWN, UNREACHABLE, PENDING...), `state_type` (HARD, SOFT) |
//! | `shinken_broker_services_by_state` | gauge | `state` (OK, WARNING, CRITICAL, UNKNOWN, PENDING...), `state_type` |
//! | `shinken_broker_problems` | gauge | |
//! | `shinken_broker_check_latency_seconds` | histogram | |
//! | `shinken_broker_check_execution_time_seconds` | histogram | |
//! | `shinken_broker_broks_received_total` | counter | `type` |
//! | `shinken_broker_broks_per_second` | gauge | (over the last 10 s) |
//! | `shinken_broker_checks_per_second` | gauge | (check results, over the last 10 s) |
//! | `shinken_broker_daemon_alive` | gauge | `name`, `role`, `spare` |
//! | `shinken_broker_daemon_active` | gauge | `name`, `role`, `spare` |
//! | `shinken_broker_arbiter_reachable` | gauge | |
//! | `shinken_broker_takeovers_total` | counter | |
//! | `shinken_broker_state_changes_total` | counter | |
//! | `shinken_broker_notifications_total` | counter | |

use crate::satellite::view::LiveView;
use std::collections::BTreeMap;
use std::fmt::Write;

/// A label value, escaped as the exposition format wants.
pub fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// States always exported (0 when none), so that series do not come and go.
const HOST_STATES: [&str; 4] = ["UP", "DOWN", "UNREACHABLE", "PENDING"];
const SERVICE_STATES: [&str; 5] = ["OK", "WARNING", "CRITICAL", "UNKNOWN", "PENDING"];

fn by_state<'a>(name: &str, help: &str, known: &[&str], items: impl Iterator<Item = (&'a str, &'a str)>, out: &mut String) {
    let mut counts: BTreeMap<(String, String), u64> = BTreeMap::new();
    for s in known {
        for t in ["HARD", "SOFT"] {
            counts.insert((s.to_string(), t.to_string()), 0);
        }
    }
    for (s, t) in items {
        *counts.entry((s.to_string(), t.to_string())).or_default() += 1;
    }
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
    for ((s, t), n) in counts {
        let _ = writeln!(out, "{name}{{state=\"{}\",state_type=\"{}\"}} {n}", label(&s), label(&t));
    }
}

/// Appends the view's metrics to `out`.
pub fn render(view: &LiveView, now: f64, out: &mut String) {
    by_state(
        "shinken_broker_hosts_by_state",
        "Hosts by state and state type.",
        &HOST_STATES,
        view.hosts().map(|e| (e.status.state.as_str(), e.status.state_type.as_str())),
        out,
    );
    by_state(
        "shinken_broker_services_by_state",
        "Services by state and state type.",
        &SERVICE_STATES,
        view.services().map(|e| (e.status.state.as_str(), e.status.state_type.as_str())),
        out,
    );
    let _ = writeln!(
        out,
        "# HELP shinken_broker_problems Non-OK services and non-UP hosts.\n# TYPE shinken_broker_problems gauge\nshinken_broker_problems {}",
        view.problems().len()
    );
    view.latency().render(
        "shinken_broker_check_latency_seconds",
        "Seconds between when checks were due and when they started.",
        out,
    );
    view.execution_time()
        .render("shinken_broker_check_execution_time_seconds", "Seconds checks took to run.", out);
    let _ = writeln!(
        out,
        "# HELP shinken_broker_broks_received_total Broks received, by type.\n# TYPE shinken_broker_broks_received_total counter"
    );
    for (kind, n) in view.counts() {
        let _ = writeln!(out, "shinken_broker_broks_received_total{{type=\"{}\"}} {n}", label(kind));
    }
    let _ = writeln!(
        out,
        "# HELP shinken_broker_broks_per_second Broks received per second (last 10 s).\n# TYPE shinken_broker_broks_per_second gauge\n\
         shinken_broker_broks_per_second {}\n\
         # HELP shinken_broker_checks_per_second Check results received per second (last 10 s).\n# TYPE shinken_broker_checks_per_second gauge\n\
         shinken_broker_checks_per_second {}",
        view.broks_per_second(now),
        view.checks_per_second(now)
    );
    let health = view.health();
    let _ = writeln!(
        out,
        "# HELP shinken_broker_daemon_alive Whether a daemon is alive, as the arbiter says.\n# TYPE shinken_broker_daemon_alive gauge"
    );
    for d in &health.daemons {
        let _ = writeln!(
            out,
            "shinken_broker_daemon_alive{{name=\"{}\",role=\"{}\",spare=\"{}\"}} {}",
            label(&d.name),
            label(&d.role),
            d.spare,
            u8::from(d.alive)
        );
    }
    let _ = writeln!(
        out,
        "# HELP shinken_broker_daemon_active Whether a daemon holds work (or leads, for an arbiter).\n# TYPE shinken_broker_daemon_active gauge"
    );
    for d in &health.daemons {
        let _ = writeln!(
            out,
            "shinken_broker_daemon_active{{name=\"{}\",role=\"{}\",spare=\"{}\"}} {}",
            label(&d.name),
            label(&d.role),
            d.spare,
            u8::from(d.active)
        );
    }
    let _ = writeln!(
        out,
        "# HELP shinken_broker_arbiter_reachable Whether the last poll of the arbiters got an answer.\n\
         # TYPE shinken_broker_arbiter_reachable gauge\nshinken_broker_arbiter_reachable {}\n\
         # HELP shinken_broker_takeovers_total Takeovers seen (spares becoming active, parts moving, arbiters leading).\n\
         # TYPE shinken_broker_takeovers_total counter\nshinken_broker_takeovers_total {}\n\
         # HELP shinken_broker_state_changes_total State changes seen.\n\
         # TYPE shinken_broker_state_changes_total counter\nshinken_broker_state_changes_total {}\n\
         # HELP shinken_broker_notifications_total Notifications seen in the monitoring log.\n\
         # TYPE shinken_broker_notifications_total counter\nshinken_broker_notifications_total {}",
        u8::from(health.arbiter_reachable),
        view.takeovers_total(),
        view.state_changes_total(),
        view.notifications_total()
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::{ArbiterStatus, Brok, DaemonStatus};

    fn brok(kind: &str, data: serde_json::Value) -> Brok {
        Brok {
            id: 0,
            kind: kind.into(),
            data,
        }
    }

    fn status(host: &str, svc: Option<&str>, state: &str, state_type: &str) -> serde_json::Value {
        let mut v = serde_json::json!({
            "host_name": host, "state": state, "state_type": state_type, "attempt": 1,
            "max_check_attempts": 2, "last_check": 1.0, "output": "", "acknowledged": false,
            "in_downtime": false, "scheduler": "s1", "latency": 0.3, "execution_time": 0.02,
        });
        if let Some(d) = svc {
            v["service_description"] = d.into();
        }
        v
    }

    /// Every sample line of `text` as (name with labels, value).
    fn samples(text: &str) -> BTreeMap<String, String> {
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|l| {
                let (k, v) = l.rsplit_once(' ').unwrap();
                (k.to_string(), v.to_string())
            })
            .collect()
    }

    #[test]
    fn the_exposition_has_states_histograms_broks_daemons_and_takeovers() {
        let mut v = LiveView::new();
        v.apply("s1", &brok("initial_host_status", status("h", None, "UP", "HARD")), 100.0);
        v.apply("s1", &brok("initial_service_status", status("h", Some("a"), "OK", "HARD")), 100.0);
        v.apply(
            "s1",
            &brok("service_check_result", status("h", Some("a"), "CRITICAL", "SOFT")),
            100.0,
        );
        v.apply(
            "s1",
            &brok("service_check_result", status("h", Some("b\"x"), "CRITICAL", "HARD")),
            100.0,
        );
        let st = ArbiterStatus {
            name: "arb".into(),
            master: true,
            epoch: 1,
            daemons: vec![DaemonStatus {
                name: "p-1".into(),
                role: "poller".into(),
                spare: true,
                alive: false,
                address: "a".into(),
                port: 1,
                realm: "All".into(),
                parts: Default::default(),
            }],
        };
        v.set_arbiter_status(&st, &BTreeMap::new(), 100.0);
        let mut text = String::new();
        render(&v, 100.0, &mut text);
        let s = samples(&text);
        assert_eq!(s["shinken_broker_hosts_by_state{state=\"UP\",state_type=\"HARD\"}"], "1");
        assert_eq!(s["shinken_broker_hosts_by_state{state=\"DOWN\",state_type=\"SOFT\"}"], "0");
        assert_eq!(s["shinken_broker_services_by_state{state=\"CRITICAL\",state_type=\"SOFT\"}"], "1");
        assert_eq!(s["shinken_broker_services_by_state{state=\"CRITICAL\",state_type=\"HARD\"}"], "1");
        assert_eq!(s["shinken_broker_services_by_state{state=\"OK\",state_type=\"HARD\"}"], "0");
        assert_eq!(s["shinken_broker_problems"], "2");
        assert_eq!(s["shinken_broker_check_latency_seconds_bucket{le=\"0.25\"}"], "0");
        assert_eq!(s["shinken_broker_check_latency_seconds_bucket{le=\"0.5\"}"], "2");
        assert_eq!(s["shinken_broker_check_execution_time_seconds_count"], "2");
        assert_eq!(s["shinken_broker_broks_received_total{type=\"service_check_result\"}"], "2");
        assert_eq!(s["shinken_broker_broks_per_second"], "0.4");
        assert_eq!(s["shinken_broker_checks_per_second"], "0.2");
        assert_eq!(s["shinken_broker_daemon_alive{name=\"p-1\",role=\"poller\",spare=\"true\"}"], "0");
        assert_eq!(
            s["shinken_broker_daemon_active{name=\"arb\",role=\"arbiter\",spare=\"false\"}"],
            "1"
        );
        assert_eq!(s["shinken_broker_takeovers_total"], "0");
        assert_eq!(s["shinken_broker_state_changes_total"], "1");
        assert_eq!(s["shinken_broker_arbiter_reachable"], "1");
        // Every sample belongs to a declared family.
        for name in s.keys() {
            let family = name.split('{').next().unwrap();
            let base = family
                .trim_end_matches("_bucket")
                .trim_end_matches("_sum")
                .trim_end_matches("_count");
            assert!(text.contains(&format!("# TYPE {base} ")), "{family} has no TYPE line");
        }
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
