//! The operator's own metrics, in Prometheus text exposition (`GET /metrics`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Counters shared by every reconcile.
#[derive(Debug, Default)]
pub struct Metrics {
    reconciles: AtomicU64,
    failures: AtomicU64,
    takeovers: AtomicU64,
    /// Sum of reconcile durations, in microseconds (with `reconciles`, the mean).
    reconcile_micros: AtomicU64,
    /// 1 while this replica leads (with leader election), else 0.
    leading: AtomicU64,
}

impl Metrics {
    /// A reconcile ended.
    pub fn reconciled(&self, took: Duration, ok: bool) {
        self.reconciles.fetch_add(1, Ordering::Relaxed);
        self.reconcile_micros.fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        if !ok {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A daemon was declared down to an arbiter.
    pub fn takeover(&self) {
        self.takeovers.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether this replica leads.
    pub fn set_leading(&self, leading: bool) {
        self.leading.store(u64::from(leading), Ordering::Relaxed);
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let r = self.reconciles.load(Ordering::Relaxed);
        format!(
            "# HELP shinken_operator_reconciles_total Reconciles of ShinkenClusters.\n# TYPE shinken_operator_reconciles_total counter\nshinken_operator_reconciles_total {r}\n\
             # HELP shinken_operator_reconcile_failures_total Reconciles that failed and were retried.\n# TYPE shinken_operator_reconcile_failures_total counter\nshinken_operator_reconcile_failures_total {}\n\
             # HELP shinken_operator_reconcile_seconds_total Time spent reconciling.\n# TYPE shinken_operator_reconcile_seconds_total counter\nshinken_operator_reconcile_seconds_total {:.6}\n\
             # HELP shinken_operator_takeovers_total Daemons declared down to an arbiter after a pod failure.\n# TYPE shinken_operator_takeovers_total counter\nshinken_operator_takeovers_total {}\n\
             # HELP shinken_operator_leading Whether this replica leads.\n# TYPE shinken_operator_leading gauge\nshinken_operator_leading {}\n",
            self.failures.load(Ordering::Relaxed),
            self.reconcile_micros.load(Ordering::Relaxed) as f64 / 1e6,
            self.takeovers.load(Ordering::Relaxed),
            self.leading.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_show_in_the_exposition() {
        let m = Metrics::default();
        m.reconciled(Duration::from_millis(1500), false);
        m.takeover();
        m.set_leading(true);
        let t = m.render();
        assert!(t.contains("shinken_operator_reconciles_total 1\n"));
        assert!(t.contains("shinken_operator_reconcile_failures_total 1\n"));
        assert!(t.contains("shinken_operator_reconcile_seconds_total 1.500000\n"));
        assert!(t.contains("shinken_operator_takeovers_total 1\n"));
        assert!(t.contains("shinken_operator_leading 1\n"));
    }
}
