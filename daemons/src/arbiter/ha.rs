//! Arbiter high availability, the pure part (semantics reference, 2.9): the spare's wait for
//! the master's death ([`MasterWatch`]), the master's proof that no spare leads in its place
//! ([`Witness`]) and what one arbiter knows of the others ([`PeerState`]). Time is an input:
//! the daemon passes seconds of a monotonic clock, so a wall-clock jump neither kills nor
//! revives a master (Shinken compensates jumps over 900 s).

use shinken_config::daemons::{DaemonDef, Role, Topology};

/// How long a spare waits when no master arbiter is defined (Shinken's value).
pub const DEFAULT_MASTER_WAIT: f64 = 300.0;

/// `check_interval x max_check_attempts` of the master (non-spare) arbiter of `topology`:
/// how long a spare waits without `do_not_run` before it takes the lead.
pub fn master_wait(topology: &Topology) -> f64 {
    topology
        .by_role(Role::Arbiter)
        .find(|a| !a.spare)
        .map(|a| f64::from(a.check_interval.max(1)) * f64::from(a.max_check_attempts.max(1)))
        .unwrap_or(DEFAULT_MASTER_WAIT)
}

/// A change of leadership decided by [`MasterWatch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The master was silent too long: this spare leads now.
    TookLead,
    /// The master spoke while this spare led: it goes back to waiting.
    SteppedDown,
}

/// The spare arbiter's wait for the master's death.
///
/// The timer starts with the wait (a spare started alone takes the lead after `wait`, Shinken
/// issue #231) and is reset only by `do_not_run` ([`MasterWatch::master_spoke`]). A `put_conf`
/// ([`MasterWatch::conf_received`]) makes a leading spare step down; going back to waiting
/// starts a new wait.
#[derive(Debug, Clone, PartialEq)]
pub struct MasterWatch {
    /// Seconds of silence after which the master is dead.
    wait: f64,
    /// When the master last spoke, or the current wait started.
    last_heard: f64,
    leading: bool,
    /// Why the master was declared dead from outside (the operator saw its pod go), if it was:
    /// the lead is taken at the next tick without waiting.
    declared_dead: Option<String>,
}

impl MasterWatch {
    /// Waiting starts at `now`.
    pub fn new(wait: f64, now: f64) -> MasterWatch {
        MasterWatch {
            wait,
            last_heard: now,
            leading: false,
            declared_dead: None,
        }
    }

    pub fn wait(&self) -> f64 {
        self.wait
    }

    /// A new configuration may name another master with other timings.
    pub fn set_wait(&mut self, wait: f64) {
        self.wait = wait;
    }

    pub fn leading(&self) -> bool {
        self.leading
    }

    /// Seconds since the master last spoke (or since the wait started).
    pub fn silence(&self, now: f64) -> f64 {
        (now - self.last_heard).max(0.0)
    }

    /// `do_not_run` from the master: the timer restarts; a leading spare steps down.
    pub fn master_spoke(&mut self, now: f64) -> Option<Change> {
        self.last_heard = now;
        self.step_down()
    }

    /// `put_conf` from the master: a leading spare steps down and a new wait starts; a waiting
    /// one keeps its timer (only `do_not_run` resets it, as in Shinken).
    pub fn conf_received(&mut self, now: f64) -> Option<Change> {
        let change = self.step_down();
        if change.is_some() {
            self.last_heard = now;
        }
        change
    }

    fn step_down(&mut self) -> Option<Change> {
        self.declared_dead = None;
        std::mem::replace(&mut self.leading, false).then_some(Change::SteppedDown)
    }

    /// `POST /v1/daemons/{master}/down`: the master is gone (its pod was deleted): the next tick
    /// takes the lead at once. The master speaking again makes the spare step down as usual.
    pub fn master_declared_dead(&mut self, reason: &str) {
        if !self.leading {
            self.declared_dead = Some(reason.to_string());
        }
    }

    /// Why the lead was taken early, once (for the log).
    pub fn take_declared_reason(&mut self) -> Option<String> {
        self.declared_dead.take()
    }

    /// Called every loop: takes the lead once the master was silent for longer than the wait.
    pub fn tick(&mut self, now: f64) -> Option<Change> {
        if now < self.last_heard {
            self.last_heard = now; // a clock that went back: count from here
        }
        if !self.leading && (self.declared_dead.is_some() || now - self.last_heard > self.wait) {
            self.leading = true;
            return Some(Change::TookLead);
        }
        None
    }
}

/// A change decided by [`Witness`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Vouch {
    /// Nothing witnessed for `silence` seconds, longer than the wait: a spare may lead now.
    Stopped { silence: f64 },
    /// A spare arbiter or the epoch store answered again.
    Resumed,
}

/// The master arbiter's proof that no spare arbiter leads in its place (DESIGN, "Fencing").
///
/// A spare takes the lead after `wait` seconds without `do_not_run`. So the master speaks to the
/// daemons (probes, dispatch) only while a spare arbiter answered its heartbeat (that spare's
/// wait restarted), or the epoch store answered (a spare that leads raises the counter there, and
/// the store refuses the writes of the master's stale schedulers, which reach it as the master
/// does), within the last `wait` seconds. Cut from both (a partition that leaves it alone with
/// its own box) it cannot tell whether a spare leads now: it stops speaking to the daemons, so
/// that its schedulers stop acting on their parts when their fencing window passes without an
/// arbiter's call, and speaks again once it reaches either.
///
/// Times are the starts of the contacts (seconds of a monotonic clock): a spare's wait
/// restarts no earlier than the heartbeat that restarted it was sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Witness {
    wait: f64,
    /// When the last contact answered started (or the wait, at start).
    last: f64,
    stopped: bool,
}

impl Witness {
    /// Counting starts at `now` (a master just started has `wait` seconds to reach one).
    pub fn new(wait: f64, now: f64) -> Witness {
        Witness {
            wait,
            last: now,
            stopped: false,
        }
    }

    pub fn wait(&self) -> f64 {
        self.wait
    }

    pub fn set_wait(&mut self, wait: f64) {
        self.wait = wait;
    }

    /// A spare arbiter took a heartbeat, or the epoch store answered, in a contact started at
    /// `started`.
    pub fn seen(&mut self, started: f64) {
        self.last = self.last.max(started);
    }

    /// Whether the master must not speak to the daemons now.
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// Called before each pass: stops once nothing was witnessed for longer than the wait,
    /// resumes once something was.
    pub fn tick(&mut self, now: f64) -> Option<Vouch> {
        if now < self.last {
            self.last = now; // a clock that went back: count from here
        }
        let silence = now - self.last;
        match (self.stopped, silence > self.wait) {
            (false, true) => {
                self.stopped = true;
                Some(Vouch::Stopped { silence })
            }
            (true, false) => {
                self.stopped = false;
                Some(Vouch::Resumed)
            }
            _ => None,
        }
    }
}

/// What this arbiter knows of another arbiter.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerState {
    pub def: DaemonDef,
    /// As this arbiter sees it: for a master, its heartbeats to the peer are answered (dead
    /// after `max_check_attempts` failed rounds); for a spare, the master spoke within the
    /// wait (dead once the spare took the lead: Shinken bug #1434 showed it alive).
    pub alive: bool,
    /// Failed heartbeats in a row, capped at `max_check_attempts`.
    pub attempt: u32,
    /// A heartbeat to it is in flight (a slow peer does not pile calls up).
    pub busy: bool,
}

impl PeerState {
    pub fn new(def: DaemonDef) -> PeerState {
        PeerState {
            def,
            alive: true,
            attempt: 0,
            busy: false,
        }
    }

    /// The outcome of a heartbeat round; the log line to write when its liveness changed.
    pub fn heartbeat(&mut self, outcome: Result<(), String>) -> Option<String> {
        self.busy = false;
        let name = &self.def.name;
        match outcome {
            Ok(()) => {
                self.attempt = 0;
                (!std::mem::replace(&mut self.alive, true)).then(|| format!("Arbiter {name} is alive again"))
            }
            Err(reason) => {
                let max = self.def.max_check_attempts.max(1);
                self.attempt = (self.attempt + 1).min(max);
                if self.alive && self.attempt >= max {
                    self.alive = false;
                    Some(format!(
                        "Arbiter {name} does not answer ({}/{max}): setting it to a dead state. {reason}",
                        self.attempt
                    ))
                } else {
                    None
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: f64 = 1000.0;

    #[test]
    fn a_spare_started_alone_takes_the_lead_after_the_wait() {
        let mut w = MasterWatch::new(2.0, T0);
        assert_eq!(w.tick(T0), None);
        assert_eq!(w.tick(T0 + 2.0), None, "not before the wait is over");
        assert_eq!(w.tick(T0 + 2.1), Some(Change::TookLead));
        assert!(w.leading());
        assert_eq!(w.tick(T0 + 10.0), None, "once");
    }

    #[test]
    fn only_do_not_run_resets_the_timer() {
        let mut w = MasterWatch::new(3.0, T0);
        for t in [1.0, 2.0, 3.0, 4.0, 5.0] {
            assert_eq!(w.master_spoke(T0 + t), None);
            assert_eq!(w.tick(T0 + t + 0.9), None);
        }
        // A put_conf while waiting does not count as the master speaking.
        assert_eq!(w.conf_received(T0 + 7.0), None);
        assert_eq!(w.tick(T0 + 8.1), Some(Change::TookLead));
        assert!((w.silence(T0 + 8.1) - 3.1).abs() < 1e-9);
    }

    #[test]
    fn the_master_back_makes_the_spare_step_down_and_wait_again() {
        let mut w = MasterWatch::new(2.0, T0);
        assert_eq!(w.tick(T0 + 3.0), Some(Change::TookLead));
        assert_eq!(w.master_spoke(T0 + 10.0), Some(Change::SteppedDown));
        assert!(!w.leading());
        assert_eq!(w.tick(T0 + 11.0), None);
        // put_conf also makes it step down, and starts a new wait.
        assert_eq!(w.tick(T0 + 12.5), Some(Change::TookLead));
        assert_eq!(w.conf_received(T0 + 20.0), Some(Change::SteppedDown));
        assert_eq!(w.tick(T0 + 21.0), None);
        assert_eq!(w.tick(T0 + 22.5), Some(Change::TookLead));
    }

    #[test]
    fn a_clock_that_goes_back_restarts_the_count() {
        let mut w = MasterWatch::new(2.0, T0);
        assert_eq!(w.tick(T0 - 100.0), None);
        assert_eq!(w.tick(T0 - 98.5), None);
        assert_eq!(w.tick(T0 - 97.9), Some(Change::TookLead));
    }

    #[test]
    fn the_wait_is_the_master_definition_s() {
        let text = "define arbiter {\n arbiter_name a\n check_interval 1\n max_check_attempts 2\n}\n\
                    define arbiter {\n arbiter_name b\n spare 1\n}\n";
        let cfg = crate::arbiter::whole_cfg::read_whole_cfg(text, "/t/shinken.cfg");
        assert_eq!(master_wait(&cfg.topology), 2.0);
        let text = "define arbiter {\n arbiter_name b\n spare 1\n}\n";
        let cfg = crate::arbiter::whole_cfg::read_whole_cfg(text, "/t/shinken.cfg");
        assert_eq!(master_wait(&cfg.topology), DEFAULT_MASTER_WAIT);
    }

    #[test]
    fn the_master_stops_speaking_when_it_reaches_neither_a_spare_nor_the_store() {
        let mut w = Witness::new(3.0, T0);
        assert_eq!(w.tick(T0 + 3.0), None, "a master just started has the wait to reach one");
        // Heartbeats answered every second (or the store): it speaks.
        for k in 1..10 {
            let t = T0 + f64::from(k);
            w.seen(t - 0.5);
            assert_eq!(w.tick(t), None);
            assert!(!w.stopped());
        }
        // Cut from both: stops once the wait is over, counted from the start of the last
        // contact answered (a spare's wait restarted no earlier).
        assert_eq!(w.tick(T0 + 11.5), None, "at the wait: still speaking");
        assert_eq!(w.tick(T0 + 12.0), Some(Vouch::Stopped { silence: 3.5 }));
        assert!(w.stopped());
        assert_eq!(w.tick(T0 + 30.0), None, "once");
        // A contact started long ago and answered late does not count as recent.
        w.seen(T0 + 8.0);
        assert_eq!(w.tick(T0 + 31.0), None);
        assert!(w.stopped());
        // Either answers again: it speaks again.
        w.seen(T0 + 31.0);
        assert_eq!(w.tick(T0 + 31.2), Some(Vouch::Resumed));
        assert!(!w.stopped());
        assert_eq!(w.tick(T0 + 34.0), None);
        assert!(w.tick(T0 + 34.1).is_some(), "and stops again after another silent wait");
    }

    #[test]
    fn a_longer_wait_from_a_reload_counts_at_once() {
        let mut w = Witness::new(3.0, T0);
        w.set_wait(10.0);
        assert_eq!(w.tick(T0 + 9.0), None);
        assert_eq!(w.tick(T0 + 10.5), Some(Vouch::Stopped { silence: 10.5 }));
        assert_eq!(w.tick(T0 - 5.0), Some(Vouch::Resumed), "a clock that went back counts from there");
    }

    #[test]
    fn a_peer_is_dead_after_max_check_attempts_failed_heartbeats() {
        let cfg = crate::arbiter::whole_cfg::read_whole_cfg(
            "define arbiter {\n arbiter_name s\n spare 1\n max_check_attempts 2\n}\n",
            "/t/shinken.cfg",
        );
        let mut p = PeerState::new(cfg.topology.by_role(Role::Arbiter).next().unwrap().clone());
        assert_eq!(p.heartbeat(Err("refused".into())), None);
        assert!(p.alive);
        assert!(p.heartbeat(Err("refused".into())).unwrap().contains("dead state"));
        assert!(!p.alive);
        assert_eq!(p.heartbeat(Err("refused".into())), None, "logged once");
        assert_eq!(p.heartbeat(Ok(())).as_deref(), Some("Arbiter s is alive again"));
        assert!(p.alive && p.attempt == 0);
    }

    #[test]
    fn a_master_declared_dead_is_replaced_at_the_next_tick() {
        let mut w = MasterWatch::new(60.0, 0.0);
        assert_eq!(w.tick(1.0), None);
        w.master_declared_dead("pod arbiter-0 is being deleted");
        assert_eq!(w.tick(1.1), Some(Change::TookLead));
        assert_eq!(w.take_declared_reason().as_deref(), Some("pod arbiter-0 is being deleted"));
        // The master speaks again: the spare steps down and waits the whole wait again.
        assert_eq!(w.master_spoke(2.0), Some(Change::SteppedDown));
        assert_eq!(w.tick(3.0), None);
        // Declaring it dead while leading changes nothing.
        let mut w = MasterWatch::new(1.0, 0.0);
        assert_eq!(w.tick(2.0), Some(Change::TookLead));
        w.master_declared_dead("late");
        assert_eq!(w.take_declared_reason(), None);
    }
}
