//! The arbiter end to end, with real processes on loopback ports chosen at run time: the first
//! dispatch, a master scheduler killed and its part handed to the spare with a higher epoch, the
//! master restarted and left idle (no fail-back), a reload refused and one accepted.

use shinken::messages::{ArbiterStatus, Managed, SchedulerStatus};
use shinken::protocol::{Client, Token};
use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SECRET: &str = "arbiter-test-token-0123456789";

/// A temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let path = std::env::temp_dir().join(format!("shinken-arbiter-test-{}-{nanos}", std::process::id()));
        fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A daemon process, killed on drop; its stderr goes to `<dir>/<name>.log`.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn start(role: &str, name: &str, dir: &Path) -> Daemon {
        let log = dir.join(format!("{name}.log"));
        // Append: a restarted daemon keeps its earlier lines.
        let file = fs::OpenOptions::new().create(true).append(true).open(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_shinken"))
            .args([role, "--config", dir.to_str().unwrap(), "--name", name])
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

    fn exited(&mut self) -> bool {
        self.child.try_wait().unwrap().is_some()
    }

    fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Ports {
    arbiter: u16,
    master: u16,
    spare: u16,
    poller: u16,
    reactionner: u16,
    broker: u16,
}

fn daemons_cfg(p: &Ports) -> String {
    let probe = "    check_interval  1\n    max_check_attempts  2\n    timeout  1\n    data_timeout  10\n";
    format!(
        "define arbiter {{\n    arbiter_name  arbiter-master\n    address  127.0.0.1\n    port  {}\n}}\n\
         define scheduler {{\n    scheduler_name  scheduler-master\n    address  127.0.0.1\n    port  {}\n{probe}}}\n\
         define scheduler {{\n    scheduler_name  scheduler-spare\n    address  127.0.0.1\n    port  {}\n    spare  1\n{probe}}}\n\
         define poller {{\n    poller_name  poller-master\n    address  127.0.0.1\n    port  {}\n{probe}}}\n\
         define reactionner {{\n    reactionner_name  reactionner-master\n    address  127.0.0.1\n    port  {}\n{probe}}}\n\
         define broker {{\n    broker_name  broker-master\n    address  127.0.0.1\n    port  {}\n{probe}}}\n",
        p.arbiter, p.master, p.spare, p.poller, p.reactionner, p.broker
    )
}

fn host(name: &str) -> String {
    format!(
        "define host {{\n    host_name  {name}\n    address  127.0.0.1\n    check_command  check_dummy!0\n    max_check_attempts  2\n    \
         check_interval  5\n    retry_interval  1\n    check_period  24x7\n}}\n\
         define service {{\n    host_name  {name}\n    service_description  svc1\n    check_command  check_dummy!0\n    \
         max_check_attempts  2\n    check_interval  5\n    retry_interval  1\n    check_period  24x7\n}}\n"
    )
}

fn objects_cfg(hosts: &[&str]) -> String {
    let mut text = String::from(
        "define command {\n    command_name  check_dummy\n    command_line  /usr/lib/nagios/plugins/check_dummy $ARG1$\n}\n\
         define timeperiod {\n    timeperiod_name  24x7\n    alias  always\n    sunday  00:00-24:00\n    monday  00:00-24:00\n    \
         tuesday  00:00-24:00\n    wednesday  00:00-24:00\n    thursday  00:00-24:00\n    friday  00:00-24:00\n    saturday  00:00-24:00\n}\n",
    );
    for h in hosts {
        text.push_str(&host(h));
    }
    text
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

/// Polls `f` every 200 ms until it gives `Some`, or panics after `within` with `what`.
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
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn wait_health(port: u16, name: &str) {
    wait_for(Duration::from_secs(15), &format!("{name} to answer /health"), || async move {
        client(port).health().await.ok()
    })
    .await
}

/// Starts a satellite if its subcommand exists; `None` when it does not (left out of the test).
async fn try_satellite(role: &str, name: &str, port: u16, dir: &Path) -> Option<Daemon> {
    let mut d = Daemon::start(role, name, dir);
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if d.exited() {
            eprintln!("`shinken {role}` is not available; left out: {}", d.log());
            return None;
        }
        if client(port).health().await.is_ok() {
            return Some(d);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("`shinken {role}` did not answer; left out");
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_to_the_spare_no_fail_back_and_reload() {
    let tmp = TempDir::new();
    let dir = tmp.0.clone();
    let ports = Ports {
        arbiter: free_port(),
        master: free_port(),
        spare: free_port(),
        poller: free_port(),
        reactionner: free_port(),
        broker: free_port(),
    };
    fs::write(
        dir.join("shinken.cfg"),
        "cfg_file=daemons.cfg\ncfg_file=objects.cfg\ninterval_length=1\n",
    )
    .unwrap();
    fs::write(dir.join("daemons.cfg"), daemons_cfg(&ports)).unwrap();
    fs::write(dir.join("objects.cfg"), objects_cfg(&["web1"])).unwrap();
    let token = dir.join("shinken.token");
    fs::write(&token, format!("{SECRET}\n")).unwrap();
    fs::set_permissions(&token, fs::Permissions::from_mode(0o600)).unwrap();

    let mut master = Daemon::start("scheduler", "scheduler-master", &dir);
    let spare = Daemon::start("scheduler", "scheduler-spare", &dir);
    wait_health(ports.master, "scheduler-master").await;
    wait_health(ports.spare, "scheduler-spare").await;
    let poller = try_satellite("poller", "poller-master", ports.poller, &dir).await;
    let broker = try_satellite("broker", "broker-master", ports.broker, &dir).await;
    let mut arbiter = Daemon::start("arbiter", "arbiter-master", &dir);

    // First dispatch: the master scheduler holds part 0.
    let e1 = wait_for(Duration::from_secs(20), "scheduler-master to hold part 0", || async {
        managed(ports.master).await.and_then(|m| m.get(&0).copied())
    })
    .await;
    let status: ArbiterStatus = wait_for(Duration::from_secs(10), "the arbiter's status", || async {
        client(ports.arbiter).get::<ArbiterStatus>("status", &[], false).await.ok()
    })
    .await;
    assert!(status.master && status.name == "arbiter-master", "{status:?}");
    let m = status.daemons.iter().find(|d| d.name == "scheduler-master").unwrap();
    assert_eq!(m.parts, Managed::from([(0, e1)]), "{status:?}");
    assert!(m.alive && m.role == "scheduler" && !m.spare && m.port == ports.master);
    assert!(
        status
            .daemons
            .iter()
            .any(|d| d.name == "scheduler-spare" && d.spare && d.parts.is_empty())
    );
    let log = arbiter.log();
    for line in [
        "I am the master Arbiter: arbiter-master",
        "Cutting the hosts and services into parts",
        "Number of hosts in the realm",
        "Begin to dispatch configurations to satellites",
        "Dispatch OK of conf in scheduler scheduler-master",
        "OK, all schedulers configurations are dispatched :)",
    ] {
        assert!(log.contains(line), "missing {line:?} in:\n{log}");
    }
    assert!(managed(ports.spare).await.unwrap().is_empty());
    if poller.is_some() {
        wait_for(Duration::from_secs(10), "the poller to get the link of part 0", || async {
            managed(ports.poller).await.filter(|m| m.get(&0) == Some(&e1)).map(|_| ())
        })
        .await;
    }
    if broker.is_some() {
        wait_for(Duration::from_secs(10), "the broker to get the link of part 0", || async {
            managed(ports.broker).await.filter(|m| m.get(&0) == Some(&e1)).map(|_| ())
        })
        .await;
    }

    // The master dies: after max_check_attempts (2) failed probes, the spare holds the part.
    let killed = Instant::now();
    let _ = master.child.kill();
    let _ = master.child.wait();
    let e2 = wait_for(Duration::from_secs(30), "scheduler-spare to hold part 0", || async {
        managed(ports.spare).await.and_then(|m| m.get(&0).copied())
    })
    .await;
    assert!(e2 > e1, "epoch {e2} must be above {e1}");
    let log = arbiter.log();
    for line in [
        "Add failed attempt to scheduler-master (1/2)",
        "Add failed attempt to scheduler-master (2/2)",
        "Setting the satellite scheduler-master to a dead state.",
        "Scheduler scheduler-master had the configuration 0 but is dead, I am not happy.",
        "Dispatch OK of conf in scheduler scheduler-spare",
    ] {
        assert!(log.contains(line), "missing {line:?} in:\n{log}");
    }
    let first_attempt = log.find("Add failed attempt to scheduler-master (1/2)").unwrap();
    assert!(
        !log[first_attempt..].contains("did not managed"),
        "no failover at the first failed probe:\n{log}"
    );
    eprintln!("failover took {:?}", killed.elapsed());
    if poller.is_some() {
        wait_for(Duration::from_secs(10), "the poller to follow the spare", || async {
            managed(ports.poller).await.filter(|m| m.get(&0) == Some(&e2)).map(|_| ())
        })
        .await;
    }

    // The master comes back: alive again, idle; the spare keeps the part.
    let master = Daemon::start("scheduler", "scheduler-master", &dir);
    wait_health(ports.master, "the restarted scheduler-master").await;
    wait_for(Duration::from_secs(15), "the arbiter to see scheduler-master alive", || async {
        let s: ArbiterStatus = client(ports.arbiter).get("status", &[], false).await.ok()?;
        s.daemons.iter().find(|d| d.name == "scheduler-master" && d.alive).map(|_| ())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(managed(ports.master).await.unwrap().is_empty(), "no fail-back");
    assert_eq!(managed(ports.spare).await.unwrap(), Managed::from([(0, e2)]));
    assert!(arbiter.log().contains("scheduler-master is alive again"));

    // A broken configuration: refused with its errors, the old one kept.
    let good = objects_cfg(&["web1", "web2"]);
    fs::write(
        dir.join("objects.cfg"),
        format!("{good}define service {{\n    host_name  nosuchhost\n    service_description  x\n    check_command  check_dummy!0\n}}\n"),
    )
    .unwrap();
    let refused = client(ports.arbiter)
        .post::<_, serde_json::Value>("reload", &serde_json::json!({}), true)
        .await
        .unwrap_err();
    assert_eq!(refused.status(), Some(400), "{refused}");
    assert!(refused.to_string().contains("nosuchhost"), "{refused}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(managed(ports.spare).await.unwrap(), Managed::from([(0, e2)]));
    assert!(managed(ports.master).await.unwrap().is_empty());
    assert!(arbiter.log().contains("Configuration reload refused"));

    // A valid changed configuration: a new epoch, to the scheduler that holds the part.
    fs::write(dir.join("objects.cfg"), &good).unwrap();
    let answer: serde_json::Value = client(ports.arbiter).post("reload", &serde_json::json!({}), true).await.unwrap();
    assert_eq!(answer["reloaded"], true, "{answer}");
    let e3 = wait_for(Duration::from_secs(15), "scheduler-spare to hold the new epoch", || async {
        managed(ports.spare).await.and_then(|m| m.get(&0).copied()).filter(|&e| e > e2)
    })
    .await;
    assert!(e3 > e2);
    let sched: SchedulerStatus = client(ports.spare).get("status", &[], false).await.unwrap();
    assert_eq!(sched.hosts.len(), 2, "{sched:?}");
    assert!(
        managed(ports.master).await.unwrap().is_empty(),
        "a reload does not fail back either"
    );
    assert!(arbiter.log().contains("Configuration reloaded"));

    // The operator's signal: the spare is declared down, the idle master takes the part at once.
    let unknown = client(ports.arbiter)
        .post::<_, serde_json::Value>("daemons/nobody/down", &serde_json::json!({"reason": "test"}), false)
        .await
        .unwrap_err();
    assert_eq!(unknown.status(), Some(404));
    let _: serde_json::Value = client(ports.arbiter)
        .post("daemons/scheduler-spare/down", &serde_json::json!({"reason": "pod deleted"}), false)
        .await
        .unwrap();
    let e4 = wait_for(Duration::from_secs(10), "scheduler-master to take part 0 back", || async {
        managed(ports.master).await.and_then(|m| m.get(&0).copied())
    })
    .await;
    assert!(e4 > e3);
    assert!(arbiter.log().contains("scheduler-spare is declared down: pod deleted"));

    // Graceful stop.
    let status = arbiter.terminate().expect("the arbiter stops on SIGTERM");
    assert!(status.success(), "{status:?}\n{}", arbiter.log());
    drop((spare, master, poller, broker));
}

#[test]
fn an_arbiter_not_in_the_configuration_refuses_to_start() {
    let tmp = TempDir::new();
    let dir = tmp.0.clone();
    let ports = Ports {
        arbiter: free_port(),
        master: free_port(),
        spare: free_port(),
        poller: free_port(),
        reactionner: free_port(),
        broker: free_port(),
    };
    fs::write(
        dir.join("shinken.cfg"),
        "cfg_file=daemons.cfg\ncfg_file=objects.cfg\ninterval_length=1\n",
    )
    .unwrap();
    fs::write(dir.join("daemons.cfg"), daemons_cfg(&ports)).unwrap();
    fs::write(dir.join("objects.cfg"), objects_cfg(&["web1"])).unwrap();
    let token = dir.join("shinken.token");
    fs::write(&token, format!("{SECRET}\n")).unwrap();
    fs::set_permissions(&token, fs::Permissions::from_mode(0o600)).unwrap();
    let mut d = Daemon::start("arbiter", "arbiter-nobody", &dir);
    let status = d.child.wait().unwrap();
    assert!(!status.success());
    assert!(d.log().contains("I cannot find my own Arbiter object"), "{}", d.log());

    // A configuration with errors: printed, and no start.
    fs::write(
        dir.join("objects.cfg"),
        format!(
            "{}define service {{\n    host_name  nosuchhost\n    service_description  x\n    check_command  check_dummy!0\n}}\n",
            objects_cfg(&["web1"])
        ),
    )
    .unwrap();
    let mut d = Daemon::start("arbiter", "arbiter-master", &dir);
    let status = d.child.wait().unwrap();
    assert!(!status.success());
    let log = d.log();
    assert!(
        log.contains("nosuchhost") && log.contains("Configuration is incorrect, sorry, I bail out"),
        "{log}"
    );
}
