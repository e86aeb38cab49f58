//! The satellites end to end: real `shinken` processes (scheduler, poller, reactionner, broker,
//! receiver) on loopback ports chosen at run time, running real plugins (`check_dummy`).
//!
//! Every test writes its own configuration in a temporary directory, starts the daemons it needs
//! (a guard kills and reaps them, whatever happens), gives them their configuration as the
//! arbiter would (`put_conf`), and waits, with generous bounds, for what must happen.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use shinken::messages::{ItemStatus, PutConf, SatelliteConf, SchedulerConf, SchedulerLink, SchedulerStatus};
use shinken::protocol::{CallError, Client, Token};
use shinken_testkit::TempDir;

const SHINKEN: &str = env!("CARGO_BIN_EXE_shinken");
const SECRET: &str = "satellite-test-token-0123456789abcdef";
const SCHEDULER: &str = "scheduler-1";

/// The longest a test waits for anything (processes here answer within a second or two).
const WAIT: Duration = Duration::from_secs(40);

/// A port free right now on 127.0.0.1.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The daemons of one test: killed (SIGKILL) and reaped on drop, logs kept in the test's dir.
struct Daemons {
    dir: PathBuf,
    children: Vec<(String, Child)>,
}

impl Daemons {
    fn new(dir: &Path) -> Daemons {
        Daemons {
            dir: dir.to_path_buf(),
            children: Vec::new(),
        }
    }

    /// Starts `shinken <role> --config <dir>/shinken.cfg --name <name> [--listen 127.0.0.1:port]`.
    fn start(&mut self, role: &str, name: &str, listen: Option<u16>) {
        let n = self.children.len();
        let log = File::create(self.dir.join(format!("{name}.{n}.log"))).unwrap();
        let mut cmd = Command::new(SHINKEN);
        cmd.arg(role)
            .arg("--config")
            .arg(self.dir.join("shinken.cfg"))
            .arg("--name")
            .arg(name)
            .env("SHINKEN_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        if let Some(port) = listen {
            cmd.arg("--listen").arg(format!("127.0.0.1:{port}"));
        }
        let child = cmd.spawn().expect("start shinken");
        self.children.push((name.to_string(), child));
    }

    /// SIGKILLs and reaps every process started under `name`.
    fn kill(&mut self, name: &str) {
        for (n, child) in self.children.iter_mut() {
            if n == name {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    /// Every daemon's whole log (for assertions and failure messages).
    fn logs(&self) -> String {
        let mut out = String::new();
        let mut entries: Vec<_> = std::fs::read_dir(&self.dir).unwrap().flatten().map(|e| e.path()).collect();
        entries.sort();
        for p in entries.into_iter().filter(|p| p.extension().is_some_and(|e| e == "log")) {
            out.push_str(&format!("--- {}\n", p.file_name().unwrap().to_string_lossy()));
            out.push_str(&std::fs::read_to_string(&p).unwrap_or_default());
        }
        out
    }
}

impl Daemons {
    /// `SATELLITE_TEST_LOGS=1 cargo test --test satellite -- --nocapture` prints every log.
    fn show_logs_if_asked(&self) {
        if std::env::var_os("SATELLITE_TEST_LOGS").is_some() {
            eprintln!("{}", self.logs());
        }
    }
}

impl Drop for Daemons {
    fn drop(&mut self) {
        for (_, child) in self.children.iter_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The ports of one test's daemons.
struct Ports {
    scheduler: u16,
    poller: u16,
    reactionner: u16,
    broker: u16,
    receiver: u16,
}

impl Ports {
    fn pick() -> Ports {
        Ports {
            scheduler: free_port(),
            poller: free_port(),
            reactionner: free_port(),
            broker: free_port(),
            receiver: free_port(),
        }
    }
}

/// Writes `shinken.cfg` (daemons, one host, five services checking every second, orphans
/// handed out again after 3 s past a 5 s check timeout) and the token file (0600).
fn write_config(dir: &Path, p: &Ports) -> PathBuf {
    let daemon = |kind: &str, name: &str, port: u16| {
        format!("define {kind} {{\n    {kind}_name {name}\n    address 127.0.0.1\n    port {port}\n}}\n")
    };
    let service = |desc: &str, command: &str| {
        format!(
            "define service {{\n    host_name web-1\n    service_description {desc}\n    check_command {command}\n    \
             check_interval 1\n    retry_interval 1\n    max_check_attempts 2\n    time_to_orphanage 3\n}}\n"
        )
    };
    let mut text = String::from(
        "interval_length=1\nmax_service_check_spread=1\nmax_host_check_spread=1\n\
         service_check_timeout=5\nhost_check_timeout=5\n\n",
    );
    text += &daemon("scheduler", SCHEDULER, p.scheduler);
    text += &daemon("poller", "poller-1", p.poller);
    text += &daemon("reactionner", "reactionner-1", p.reactionner);
    text += &daemon("broker", "broker-1", p.broker);
    text += &daemon("receiver", "receiver-1", p.receiver);
    text += "define command {\n    command_name check_dummy\n    \
             command_line /usr/lib/nagios/plugins/check_dummy $ARG1$ \"$SERVICEDESC$\"\n}\n";
    text += "define command {\n    command_name check_slow\n    \
             command_line sleep $ARG1$ && /usr/lib/nagios/plugins/check_dummy 0 \"$SERVICEDESC$\"\n}\n";
    text += "define host {\n    host_name web-1\n    address 127.0.0.1\n    check_command check_dummy!0\n    \
             check_interval 1\n    retry_interval 1\n    max_check_attempts 2\n    time_to_orphanage 3\n}\n";
    text += &service("ok-1", "check_dummy!0");
    text += &service("ok-2", "check_dummy!0");
    text += &service("warning-1", "check_dummy!1");
    text += &service("critical-1", "check_dummy!2");
    text += &service("slow-1", "check_slow!2");
    let main = dir.join("shinken.cfg");
    std::fs::write(&main, text).unwrap();
    let token = dir.join("shinken.token");
    std::fs::write(&token, SECRET).unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    main
}

fn client(port: u16) -> Client {
    Client::new(
        &format!("http://127.0.0.1:{port}"),
        Token::new(SECRET).unwrap(),
        Duration::from_secs(3),
        Duration::from_secs(30),
    )
    .unwrap()
}

/// Waits until the daemon on `port` answers `/health`.
async fn wait_up(port: u16, d: &Daemons) {
    let c = client(port);
    let start = Instant::now();
    while c.health().await.is_err() {
        assert!(start.elapsed() < WAIT, "no daemon answers on port {port}\n{}", d.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The scheduler's part, cut and written as the arbiter does, sent with `put_conf`.
async fn give_scheduler_its_part(main: &Path, port: u16) -> u32 {
    let cfg = shinken_config::load(main).unwrap();
    assert!(!cfg.has_errors(), "the test configuration has errors");
    let parts = shinken::arbiter::cut_config(&cfg).unwrap();
    assert_eq!(parts.len(), 1);
    let part = &parts[0];
    let conf = PutConf::Scheduler(SchedulerConf {
        scheduler_name: SCHEDULER.into(),
        part_id: part.id as u32,
        epoch: 1,
        realm: part.realm.clone(),
        cfg: shinken::arbiter::part_cfg::part_cfg(&cfg, part),
        arbiter: "test".into(),
    });
    let ok: bool = client(port).post("put_conf", &conf, true).await.unwrap();
    assert!(ok);
    part.id as u32
}

fn satellite_conf(name: &str, epoch: u64, part_id: u32, scheduler_port: u16) -> SatelliteConf {
    SatelliteConf {
        name: name.into(),
        epoch,
        schedulers: vec![SchedulerLink {
            part_id,
            epoch: 1,
            name: SCHEDULER.into(),
            url: format!("http://127.0.0.1:{scheduler_port}"),
            timeout: 3,
            data_timeout: 30,
        }],
        tags: Vec::new(),
        polling_interval: 1,
        max_workers: 0,
        processes_by_worker: 16,
        results_batch: 0,
        max_plugins_output_length: 8192,
        arbiter: "test".into(),
    }
}

async fn put_satellite_conf(port: u16, conf: &SatelliteConf) -> Result<bool, CallError> {
    client(port).post("put_conf", &PutConf::Satellite(conf.clone()), true).await
}

async fn status(port: u16) -> SchedulerStatus {
    client(port).get("status", &[], false).await.unwrap()
}

fn service<'a>(st: &'a SchedulerStatus, desc: &str) -> Option<&'a ItemStatus> {
    st.services.iter().find(|s| s.service_description.as_deref() == Some(desc))
}

/// critical-1 CRITICAL HARD at attempt 2, warning-1 WARNING HARD, ok-1 and ok-2 OK and checked.
fn settled(st: &SchedulerStatus) -> bool {
    let is = |desc: &str, state: &str, hard_attempt: Option<u32>| {
        service(st, desc).is_some_and(|s| {
            s.state == state && s.last_check.is_some() && hard_attempt.is_none_or(|a| s.state_type == "HARD" && s.attempt == a)
        })
    };
    is("critical-1", "CRITICAL", Some(2)) && is("warning-1", "WARNING", Some(2)) && is("ok-1", "OK", None) && is("ok-2", "OK", None)
}

/// Polls `port`'s status until `done`, failing with the last status and the logs after [`WAIT`].
async fn wait_status(port: u16, d: &Daemons, what: &str, done: impl Fn(&SchedulerStatus) -> bool) -> SchedulerStatus {
    let start = Instant::now();
    loop {
        let st = status(port).await;
        if done(&st) {
            return st;
        }
        assert!(
            start.elapsed() < WAIT,
            "{what}: not reached after {WAIT:?}; last status:\n{}\n{}",
            serde_json::to_string_pretty(&st).unwrap(),
            d.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn json(port: u16, endpoint: &str) -> Value {
    client(port).get(endpoint, &[], false).await.unwrap()
}

/// `GET path` without a token, over a fresh connection: (status code, body).
fn open_get(port: u16, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let code = answer.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (code, body)
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poller_runs_checks_broker_sees_them_and_a_killed_poller_loses_nothing() {
    let tmp = TempDir::new("shinken-satellite").unwrap();
    let ports = Ports::pick();
    let main = write_config(tmp.path(), &ports);
    let mut d = Daemons::new(tmp.path());
    d.start("scheduler", SCHEDULER, None);
    d.start("poller", "poller-1", None);
    d.start("broker", "broker-1", None);
    for p in [ports.scheduler, ports.poller, ports.broker] {
        wait_up(p, &d).await;
    }
    let part = give_scheduler_its_part(&main, ports.scheduler).await;
    assert!(
        put_satellite_conf(ports.poller, &satellite_conf("poller-1", 1, part, ports.scheduler))
            .await
            .unwrap()
    );
    assert!(
        put_satellite_conf(ports.broker, &satellite_conf("broker-1", 1, part, ports.scheduler))
            .await
            .unwrap()
    );

    // The scheduler's states, reached through the poller's real plugin runs.
    let st = wait_status(ports.scheduler, &d, "scheduler states", settled).await;
    assert_eq!(service(&st, "critical-1").unwrap().max_check_attempts, 2);

    // The broker shows the same states.
    wait_status(ports.broker, &d, "broker states", |b| {
        settled(b) && b.hosts.iter().any(|h| h.host_name == "web-1")
    })
    .await;
    let logs = json(ports.broker, "logs").await;
    let lines = logs["logs"].as_array().unwrap();
    assert!(
        lines.iter().any(|l| l.as_str().unwrap_or("").contains("critical-1")),
        "broker logs: {logs}"
    );

    // The poller reports its link and its work; metrics are open.
    let ps = json(ports.poller, "status").await;
    assert_eq!(ps["role"], "poller");
    assert_eq!(ps["schedulers"][0]["connected"], true, "{ps}");
    assert!(ps["counters"]["sent"].as_u64().unwrap() > 0, "{ps}");
    let (code, metrics) = open_get(ports.poller, "/metrics");
    assert_eq!(code, 200);
    assert!(metrics.contains("shinken_poller_results_sent_total"), "{metrics}");

    // SIGKILL the poller while a check runs (slow-1 takes 2 s), start another one.
    let start = Instant::now();
    while json(ports.poller, "status").await["schedulers"][0]["in_flight"]
        .as_u64()
        .unwrap_or(0)
        == 0
    {
        assert!(start.elapsed() < WAIT, "the poller never has a check in flight\n{}", d.logs());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let killed_at = unix_now();
    d.kill("poller-1");
    let new_port = free_port();
    d.start("poller", "poller-1", Some(new_port));
    wait_up(new_port, &d).await;
    assert!(
        put_satellite_conf(new_port, &satellite_conf("poller-1", 1, part, ports.scheduler))
            .await
            .unwrap()
    );

    // Every service and the host keep being checked: what was in flight came back as orphans.
    let st = wait_status(ports.scheduler, &d, "checks after the poller restart", |st| {
        let after = |s: &ItemStatus| s.last_check.is_some_and(|t| t > killed_at + 1.0);
        st.services.len() == 5 && st.services.iter().all(after) && st.hosts.iter().all(after) && settled(st)
    })
    .await;
    assert_eq!(service(&st, "slow-1").unwrap().state, "OK");
    let ps = json(new_port, "status").await;
    assert!(ps["counters"]["sent"].as_u64().unwrap() > 0, "{ps}");
    // The scheduler handed the killed poller's checks out again.
    let logs = d.logs();
    assert!(logs.contains("never came back for the satellite 'poller-1'"), "{logs}");
    // The broker follows.
    wait_status(ports.broker, &d, "broker after the restart", |b| {
        service(b, "slow-1").is_some_and(|s| s.last_check.is_some_and(|t| t > killed_at + 1.0))
    })
    .await;
    d.show_logs_if_asked();
    drop(d);
    drop(tmp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn satellite_api_and_the_other_roles() {
    let tmp = TempDir::new("shinken-satellite").unwrap();
    let ports = Ports::pick();
    let main = write_config(tmp.path(), &ports);
    let mut d = Daemons::new(tmp.path());
    d.start("scheduler", SCHEDULER, None);
    d.start("poller", "poller-1", None);
    d.start("reactionner", "reactionner-1", None);
    d.start("receiver", "receiver-1", None);
    for p in [ports.scheduler, ports.poller, ports.reactionner, ports.receiver] {
        wait_up(p, &d).await;
    }
    let part = give_scheduler_its_part(&main, ports.scheduler).await;
    let poller = client(ports.poller);

    // Waiting for a configuration.
    let have: bool = poller.get("have_conf", &[], false).await.unwrap();
    assert!(!have);
    let managed: Value = poller.get("what_i_managed", &[], false).await.unwrap();
    assert_eq!(managed, serde_json::json!({}));

    // A scheduler part is refused with 400; a satellite configuration is taken.
    let wrong = PutConf::Scheduler(SchedulerConf {
        scheduler_name: "poller-1".into(),
        part_id: 0,
        epoch: 1,
        realm: "All".into(),
        cfg: String::new(),
        arbiter: "test".into(),
    });
    let e = poller.post::<_, bool>("put_conf", &wrong, true).await.unwrap_err();
    assert_eq!(e.status(), Some(400), "{e}");
    assert!(
        put_satellite_conf(ports.poller, &satellite_conf("poller-1", 5, part, ports.scheduler))
            .await
            .unwrap()
    );
    let managed: Value = poller.get("what_i_managed", &[], false).await.unwrap();
    assert_eq!(managed, serde_json::json!({ part.to_string(): 1 }));
    assert!(poller.get::<bool>("have_conf", &[], false).await.unwrap());
    // An older epoch comes from a stale arbiter.
    let e = put_satellite_conf(ports.poller, &satellite_conf("poller-1", 4, part, ports.scheduler))
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(409), "{e}");

    // The reactionner connects and asks for actions; the scheduler hands it no checks.
    assert!(
        put_satellite_conf(ports.reactionner, &satellite_conf("reactionner-1", 1, part, ports.scheduler))
            .await
            .unwrap()
    );
    let start = Instant::now();
    loop {
        let rs = json(ports.reactionner, "status").await;
        if rs["schedulers"][0]["connected"] == true {
            assert_eq!(rs["role"], "reactionner");
            assert_eq!(rs["counters"]["received"], 0, "{rs}");
            break;
        }
        assert!(start.elapsed() < WAIT, "the reactionner does not connect: {rs}\n{}", d.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Meanwhile the poller does the checks.
    wait_status(ports.scheduler, &d, "scheduler states", settled).await;
    let rs = json(ports.reactionner, "status").await;
    assert_eq!(rs["counters"]["received"], 0, "{rs}");

    // The receiver holds its configuration and shows its schedulers.
    assert!(
        put_satellite_conf(ports.receiver, &satellite_conf("receiver-1", 1, part, ports.scheduler))
            .await
            .unwrap()
    );
    let rs = json(ports.receiver, "status").await;
    assert_eq!(rs["role"], "receiver");
    assert_eq!(rs["schedulers"][0]["name"], SCHEDULER, "{rs}");
    assert_eq!(
        json(ports.receiver, "what_i_managed").await,
        serde_json::json!({ part.to_string(): 1 })
    );

    // wait_new_conf drops the parts; /health is open, the API is not.
    assert!(poller.get::<bool>("wait_new_conf", &[], false).await.unwrap());
    assert_eq!(json(ports.poller, "what_i_managed").await, serde_json::json!({}));
    assert_eq!(open_get(ports.poller, "/health").0, 200);
    assert_eq!(open_get(ports.poller, "/v1/status").0, 401);
    let (code, _) = open_get(ports.reactionner, "/metrics");
    assert_eq!(code, 200);

    // The logs say what happened, in Shinken's words.
    let logs = d.logs();
    for line in [
        "[poller-1] Waiting for initial configuration",
        "[poller-1] New configuration received: 1 schedulers",
        &format!(
            "[reactionner-1] Init connection with {SCHEDULER} at http://127.0.0.1:{}",
            ports.scheduler
        ),
        &format!("[reactionner-1] Connection OK with scheduler {SCHEDULER}"),
    ] {
        assert!(logs.contains(line), "missing log line {line:?}\n{logs}");
    }
    d.show_logs_if_asked();
    drop(d);
    drop(tmp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_scheduler_is_noticed_and_served_again() {
    let tmp = TempDir::new("shinken-satellite").unwrap();
    let ports = Ports::pick();
    let main = write_config(tmp.path(), &ports);
    let mut d = Daemons::new(tmp.path());
    d.start("scheduler", SCHEDULER, None);
    d.start("poller", "poller-1", None);
    d.start("broker", "broker-1", None);
    for p in [ports.scheduler, ports.poller, ports.broker] {
        wait_up(p, &d).await;
    }
    let part = give_scheduler_its_part(&main, ports.scheduler).await;
    assert!(
        put_satellite_conf(ports.poller, &satellite_conf("poller-1", 1, part, ports.scheduler))
            .await
            .unwrap()
    );
    assert!(
        put_satellite_conf(ports.broker, &satellite_conf("broker-1", 1, part, ports.scheduler))
            .await
            .unwrap()
    );
    wait_status(ports.scheduler, &d, "scheduler states", settled).await;

    // The scheduler dies and comes back (same address, new running id, states from scratch).
    d.kill(SCHEDULER);
    // Once the poller saw it gone, it must notice the new running id on reconnection.
    let start = Instant::now();
    while json(ports.poller, "status").await["schedulers"][0]["connected"] != false {
        assert!(
            start.elapsed() < WAIT,
            "the poller does not notice its scheduler is gone\n{}",
            d.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let restarted_at = unix_now();
    d.start("scheduler", SCHEDULER, None);
    wait_up(ports.scheduler, &d).await;
    give_scheduler_its_part(&main, ports.scheduler).await;
    wait_status(ports.scheduler, &d, "scheduler states after its restart", settled).await;
    // The broker asked for the new scheduler's full state and follows it.
    wait_status(ports.broker, &d, "broker after the scheduler restart", |b| {
        settled(b) && service(b, "ok-1").is_some_and(|s| s.last_check.is_some_and(|t| t > restarted_at))
    })
    .await;
    let logs = d.logs();
    assert!(
        logs.contains(&format!(
            "[poller-1] The running id of the scheduler {SCHEDULER} changed, we must clear its actions"
        )),
        "{logs}"
    );
    d.show_logs_if_asked();
    drop(d);
    drop(tmp);
}
