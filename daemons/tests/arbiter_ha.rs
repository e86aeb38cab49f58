//! Arbiter high availability end to end, with real processes on loopback ports chosen at run
//! time: a master and a spare arbiter, two schedulers (master, spare), a poller and a broker.
//!
//! The master arbiter dispatches and heartbeats the spare (which runs from other files: it gets
//! the master's configuration by `put_conf`); the master arbiter is killed: the spare takes the
//! lead after `check_interval x max_check_attempts` (2 s) and adopts the part where it runs
//! (same scheduler, same epoch); the master scheduler is killed: the spare arbiter moves the
//! part; the master arbiter returns: it leads again, adopts (no fail-back), the spare goes quiet;
//! a switchover through the API moves the part back with a higher epoch.

use shinken::messages::{ArbiterStatus, Managed};
use shinken::protocol::{Client, Token};
use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SECRET: &str = "arbiter-ha-test-token-0123456789";

/// A temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let path = std::env::temp_dir().join(format!("shinken-arbiter-ha-test-{}-{nanos}", std::process::id()));
        fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A daemon process, killed on drop; its stderr goes to `<logs>/<name>.log` (appended across
/// restarts).
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn start(role: &str, name: &str, config: &Path, logs: &Path) -> Daemon {
        let log = logs.join(format!("{name}.log"));
        let file = fs::OpenOptions::new().create(true).append(true).open(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_shinken"))
            .args([role, "--config", config.to_str().unwrap(), "--name", name])
            .env("SHINKEN_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap();
        Daemon { child, log }
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Ports {
    arbiter: u16,
    arbiter_spare: u16,
    master: u16,
    spare: u16,
    poller: u16,
    reactionner: u16,
    broker: u16,
}

fn daemons_cfg(p: &Ports) -> String {
    let probe = "    check_interval  1\n    max_check_attempts  2\n    timeout  1\n    data_timeout  10\n";
    format!(
        "define arbiter {{\n    arbiter_name  arbiter-master\n    address  127.0.0.1\n    port  {}\n{probe}}}\n\
         define arbiter {{\n    arbiter_name  arbiter-spare\n    address  127.0.0.1\n    port  {}\n    spare  1\n{probe}}}\n\
         define scheduler {{\n    scheduler_name  scheduler-master\n    address  127.0.0.1\n    port  {}\n{probe}}}\n\
         define scheduler {{\n    scheduler_name  scheduler-spare\n    address  127.0.0.1\n    port  {}\n    spare  1\n{probe}}}\n\
         define poller {{\n    poller_name  poller-master\n    address  127.0.0.1\n    port  {}\n{probe}}}\n\
         define reactionner {{\n    reactionner_name  reactionner-master\n    address  127.0.0.1\n    port  {}\n{probe}}}\n\
         define broker {{\n    broker_name  broker-master\n    address  127.0.0.1\n    port  {}\n{probe}}}\n",
        p.arbiter, p.arbiter_spare, p.master, p.spare, p.poller, p.reactionner, p.broker
    )
}

fn objects_cfg(hosts: &[&str]) -> String {
    let mut text = String::from(
        "define command {\n    command_name  check_dummy\n    command_line  /usr/lib/nagios/plugins/check_dummy $ARG1$\n}\n\
         define timeperiod {\n    timeperiod_name  24x7\n    alias  always\n    sunday  00:00-24:00\n    monday  00:00-24:00\n    \
         tuesday  00:00-24:00\n    wednesday  00:00-24:00\n    thursday  00:00-24:00\n    friday  00:00-24:00\n    saturday  00:00-24:00\n}\n",
    );
    for name in hosts {
        text.push_str(&format!(
            "define host {{\n    host_name  {name}\n    address  127.0.0.1\n    check_command  check_dummy!0\n    max_check_attempts  2\n    \
             check_interval  5\n    retry_interval  1\n    check_period  24x7\n}}\n"
        ));
    }
    text
}

/// A configuration tree in `dir`.
fn write_tree(dir: &Path, ports: &Ports, hosts: &[&str]) {
    fs::create_dir_all(dir).unwrap();
    fs::write(
        dir.join("shinken.cfg"),
        "cfg_file=daemons.cfg\ncfg_file=objects.cfg\ninterval_length=1\n",
    )
    .unwrap();
    fs::write(dir.join("daemons.cfg"), daemons_cfg(ports)).unwrap();
    fs::write(dir.join("objects.cfg"), objects_cfg(hosts)).unwrap();
    let token = dir.join("shinken.token");
    fs::write(&token, format!("{SECRET}\n")).unwrap();
    fs::set_permissions(&token, fs::Permissions::from_mode(0o600)).unwrap();
}

fn client(port: u16) -> Client {
    Client::new(
        &format!("http://127.0.0.1:{port}"),
        Token::new(SECRET).unwrap(),
        Duration::from_secs(2),
        Duration::from_secs(10),
    )
    .unwrap()
}

async fn managed(port: u16) -> Option<Managed> {
    client(port).get("what_i_managed", &[], false).await.ok()
}

async fn status(port: u16) -> Option<ArbiterStatus> {
    client(port).get("status", &[], false).await.ok()
}

/// Polls `f` every 100 ms until it gives `Some`, or panics after `within` with `what`.
async fn wait_for<T, F, Fut>(within: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {within:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_health(port: u16, name: &str) {
    wait_for(Duration::from_secs(15), &format!("{name} to answer /health"), || async move {
        client(port).health().await.ok()
    })
    .await
}

async fn wait_log(d: &Daemon, within: Duration, line: &str) {
    wait_for(within, &format!("{line:?} in the log"), || async {
        d.log().contains(line).then_some(())
    })
    .await
}

fn arbiter_seen(s: &ArbiterStatus, name: &str) -> bool {
    s.daemons.iter().any(|d| d.name == name && d.role == "arbiter" && d.alive)
}

async fn switchover(port: u16, daemon: &str, to: &str) -> Result<serde_json::Value, shinken::protocol::CallError> {
    client(port)
        .post("switchover", &serde_json::json!({ "daemon": daemon, "to": to }), true)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spare_arbiter_takes_the_lead_adopts_and_steps_down() {
    let tmp = TempDir::new();
    let ports = Ports {
        arbiter: free_port(),
        arbiter_spare: free_port(),
        master: free_port(),
        spare: free_port(),
        poller: free_port(),
        reactionner: free_port(),
        broker: free_port(),
    };
    // The master's box has two hosts; the spare's files are older (one host): the spare must
    // dispatch what the master sent it, not its own files.
    let main_dir = tmp.0.join("master-box");
    let spare_dir = tmp.0.join("spare-box");
    let logs = tmp.0.clone();
    write_tree(&main_dir, &ports, &["web1", "web2"]);
    write_tree(&spare_dir, &ports, &["web1"]);

    let mut sched_master = Daemon::start("scheduler", "scheduler-master", &main_dir, &logs);
    let _sched_spare = Daemon::start("scheduler", "scheduler-spare", &main_dir, &logs);
    let _poller = Daemon::start("poller", "poller-master", &main_dir, &logs);
    let _broker = Daemon::start("broker", "broker-master", &main_dir, &logs);
    for (port, name) in [
        (ports.master, "scheduler-master"),
        (ports.spare, "scheduler-spare"),
        (ports.poller, "poller-master"),
        (ports.broker, "broker-master"),
    ] {
        wait_health(port, name).await;
    }

    // 1. The master arbiter dispatches; the spare gets its configuration and waits.
    let mut arbiter = Daemon::start("arbiter", "arbiter-master", &main_dir, &logs);
    let e1 = wait_for(Duration::from_secs(20), "scheduler-master to hold part 0", || async {
        managed(ports.master).await.and_then(|m| m.get(&0).copied())
    })
    .await;
    wait_for(Duration::from_secs(10), "the poller to get the link of part 0", || async {
        managed(ports.poller).await.filter(|m| m.get(&0) == Some(&e1)).map(|_| ())
    })
    .await;
    let spare = Daemon::start("arbiter", "arbiter-spare", &spare_dir, &logs);
    wait_log(
        &spare,
        Duration::from_secs(10),
        "Configuration received from arbiter arbiter-master",
    )
    .await;
    let s = wait_for(Duration::from_secs(5), "the master arbiter to see the spare alive", || async {
        status(ports.arbiter).await.filter(|s| arbiter_seen(s, "arbiter-spare"))
    })
    .await;
    assert!(s.master, "{s:?}");
    let s = status(ports.arbiter_spare).await.unwrap();
    assert!(!s.master, "a waiting spare does not lead: {s:?}");
    assert!(arbiter_seen(&s, "arbiter-master"), "{s:?}");
    let log = spare.log();
    for line in [
        "I am a spare Arbiter: arbiter-spare",
        "Waiting for master death",
        "I'll wait master for 2 seconds",
    ] {
        assert!(log.contains(line), "missing {line:?} in:\n{log}");
    }
    assert!(!log.contains("take the lead"), "{log}");
    // The heartbeat goes on: no takeover while the master lives.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(!spare.log().contains("take the lead"), "{}", spare.log());

    // 2. SIGKILL the master arbiter: the spare takes the lead after ~2 s and adopts the part.
    let killed = Instant::now();
    arbiter.kill();
    wait_log(
        &spare,
        Duration::from_secs(8),
        "Arbiter Master is dead. The arbiter arbiter-spare take the lead",
    )
    .await;
    let took = killed.elapsed();
    eprintln!("the spare took the lead {took:?} after the master's death");
    // The wait counts from the master's last do_not_run, up to a heartbeat (1 s) before the kill.
    assert!(took >= Duration::from_millis(900), "too early: {took:?}");
    let log = spare.log();
    assert!(log.contains("The master arbiter was silent for 2."), "{log}");
    assert!(took <= Duration::from_secs(5), "too late: {took:?}");
    let s = wait_for(Duration::from_secs(5), "the spare to lead", || async {
        status(ports.arbiter_spare).await.filter(|s| s.master)
    })
    .await;
    let m = s.daemons.iter().find(|d| d.name == "arbiter-master").unwrap();
    assert!(!m.alive && m.role == "arbiter", "the dead master shows dead (#1434): {s:?}");
    wait_log(&spare, Duration::from_secs(5), "Configuration 0 runs on scheduler scheduler-master").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        managed(ports.master).await.unwrap(),
        Managed::from([(0, e1)]),
        "adopted: same scheduler, same epoch, no reload"
    );
    assert_eq!(managed(ports.poller).await.unwrap(), Managed::from([(0, e1)]));
    let log = spare.log();
    assert!(!log.contains("Trying to send conf"), "nothing dispatched again:\n{log}");

    // 3. SIGKILL the master scheduler: the spare arbiter moves the part to the spare scheduler,
    //    with the master's configuration (two hosts).
    sched_master.kill();
    let e2 = wait_for(Duration::from_secs(15), "scheduler-spare to hold part 0", || async {
        managed(ports.spare).await.and_then(|m| m.get(&0).copied())
    })
    .await;
    assert!(e2 > e1, "{e2} > {e1}");
    wait_log(&spare, Duration::from_secs(2), "Dispatch OK of conf in scheduler scheduler-spare").await;
    let sched: serde_json::Value = client(ports.spare).get("status", &[], false).await.unwrap();
    assert_eq!(
        sched["hosts"].as_array().map(Vec::len),
        Some(2),
        "the master's configuration: {sched}"
    );
    wait_for(Duration::from_secs(10), "the poller to follow the spare scheduler", || async {
        managed(ports.poller).await.filter(|m| m.get(&0) == Some(&e2)).map(|_| ())
    })
    .await;

    // 4. The master arbiter returns: it leads again and adopts (the part stays on the spare
    //    scheduler: no fail-back); the spare goes quiet.
    let arbiter = Daemon::start("arbiter", "arbiter-master", &main_dir, &logs);
    wait_log(&spare, Duration::from_secs(10), "Arbiter Master arbiter-master is back").await;
    let quiet_from = spare.log().len();
    wait_for(Duration::from_secs(5), "the spare's status to say master=false", || async {
        status(ports.arbiter_spare)
            .await
            .filter(|s| !s.master && arbiter_seen(s, "arbiter-master"))
    })
    .await;
    let s = status(ports.arbiter).await.unwrap();
    assert!(s.master, "{s:?}");
    wait_log(
        &arbiter,
        Duration::from_secs(5),
        "Configuration 0 runs on scheduler scheduler-spare",
    )
    .await;
    // The master scheduler returns too: idle.
    let _sched_master = Daemon::start("scheduler", "scheduler-master", &main_dir, &logs);
    wait_health(ports.master, "the restarted scheduler-master").await;
    wait_for(
        Duration::from_secs(10),
        "the master arbiter to see scheduler-master alive",
        || async {
            let s = status(ports.arbiter).await?;
            s.daemons
                .iter()
                .find(|d| d.name == "scheduler-master" && d.alive && d.parts.is_empty())
                .map(|_| ())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(managed(ports.spare).await.unwrap(), Managed::from([(0, e2)]), "no fail-back");
    assert!(managed(ports.master).await.unwrap().is_empty());
    let master_log = arbiter.log();
    let restart = master_log.rfind("I am the master Arbiter").unwrap();
    assert!(
        !master_log[restart..].contains("Trying to send conf"),
        "the returning master dispatches nothing:\n{master_log}"
    );
    let spare_log = spare.log();
    assert!(
        !spare_log[quiet_from..].contains("Trying to send") && !spare_log[quiet_from..].contains("take the lead"),
        "the spare is quiet:\n{}",
        &spare_log[quiet_from..]
    );

    // 5. Switchover: refused with reasons, then the part goes back to scheduler-master.
    for (port, daemon, to, code) in [
        (ports.arbiter, "nobody", "scheduler-master", 404),
        (ports.arbiter, "scheduler-spare", "nobody", 404),
        (ports.arbiter, "poller-master", "scheduler-master", 400),
        (ports.arbiter, "scheduler-spare", "scheduler-spare", 400),
        (ports.arbiter, "scheduler-master", "scheduler-spare", 409),
        (ports.arbiter_spare, "scheduler-spare", "scheduler-master", 409),
    ] {
        let e = switchover(port, daemon, to).await.unwrap_err();
        assert_eq!(e.status(), Some(code), "{daemon} -> {to}: {e}");
    }
    let reply = switchover(ports.arbiter, "scheduler-spare", "scheduler-master").await.unwrap();
    let e3 = reply["epoch"].as_u64().unwrap();
    assert!(e3 > e2, "{reply}");
    assert_eq!(reply["part"], 0, "{reply}");
    assert_eq!(managed(ports.master).await.unwrap(), Managed::from([(0, e3)]));
    assert!(managed(ports.spare).await.unwrap().is_empty(), "scheduler-spare was told to wait");
    assert!(
        arbiter
            .log()
            .contains("Switchover of part 0 from scheduler-spare to scheduler-master requested")
    );
    wait_for(Duration::from_secs(10), "the poller to follow the switchover", || async {
        managed(ports.poller).await.filter(|m| m.get(&0) == Some(&e3)).map(|_| ())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(managed(ports.master).await.unwrap(), Managed::from([(0, e3)]), "it stays");
    assert!(managed(ports.spare).await.unwrap().is_empty());
}
