//! External commands and self-fencing on a real `shinken scheduler` process: a part given as the
//! arbiter gives it, commands through `POST /v1/run_external_commands` (passive results,
//! acknowledgement, downtime, a malformed line, an unknown host), then arbiter silence past the
//! fencing window (`check_interval 1 x max_check_attempts 2 + 1` = 3 s): no checks, results and
//! commands refused, `fenced` in `/v1/status`; a `what_i_managed` call resumes it.

use std::fs::File;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use shinken::messages::{
    CommandOutcome, ExternalCommands, GetChecks, JobResult, JobStatus, Jobs, Managed, PutConf, PutResults, SchedulerConf,
};
use shinken::protocol::{Client, Token};
use shinken_testkit::TempDir;

const SHINKEN: &str = env!("CARGO_BIN_EXE_shinken");
const SECRET: &str = "commands-test-token-0123456789abcdef";
const SCHEDULER: &str = "scheduler-1";
const WAIT: Duration = Duration::from_secs(30);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The scheduler process: SIGKILLed and reaped on drop.
struct Daemon {
    log: PathBuf,
    child: Child,
}

impl Daemon {
    fn start(dir: &Path, port: u16) -> Daemon {
        let log = dir.join("scheduler.log");
        let child = Command::new(SHINKEN)
            .arg("scheduler")
            .arg("--config")
            .arg(dir.join("shinken.cfg"))
            .arg("--name")
            .arg(SCHEDULER)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .env("SHINKEN_LOG", "info")
            .env("SHINKEN_STATE_DIR", dir.join("state"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(File::create(&log).unwrap()))
            .spawn()
            .expect("start shinken scheduler");
        Daemon { log, child }
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::env::var_os("SCHEDULER_COMMANDS_TEST_LOGS").is_some() {
            eprintln!("{}", self.logs());
        }
    }
}

/// `shinken.cfg` (the scheduler probed every second, dead after 2 failures: a 3 s fencing
/// window) and the token file (0600).
fn write_config(dir: &Path, port: u16) -> PathBuf {
    let service = |desc: &str, interval: u32| {
        format!(
            "define service {{\n    host_name web-1\n    service_description {desc}\n    check_command check_dummy!0\n    \
             check_interval {interval}\n    retry_interval 1\n    max_check_attempts 1\n}}\n"
        )
    };
    let mut text = String::from("interval_length=1\nmax_service_check_spread=1\nmax_host_check_spread=1\n\n");
    text += &format!(
        "define scheduler {{\n    scheduler_name {SCHEDULER}\n    address 127.0.0.1\n    port {port}\n    \
         check_interval 1\n    max_check_attempts 2\n}}\n"
    );
    text += "define command {\n    command_name check_dummy\n    command_line /usr/lib/nagios/plugins/check_dummy $ARG1$\n}\n";
    text += "define host {\n    host_name web-1\n    address 127.0.0.1\n    check_command check_dummy!0\n    \
             check_interval 3600\n    max_check_attempts 1\n}\n";
    text += &service("app", 3600);
    text += &service("db", 3600);
    text += &service("poll-1", 1);
    text += &service("poll-2", 1);
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

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

async fn status(port: u16) -> Value {
    client(port).get("status", &[], false).await.unwrap()
}

fn service<'a>(st: &'a Value, desc: &str) -> &'a Value {
    st["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["service_description"] == desc)
        .unwrap_or_else(|| panic!("no service {desc} in {st}"))
}

async fn ping(port: u16) {
    let pong: String = client(port).get("ping", &[], false).await.unwrap();
    assert_eq!(pong, "pong");
}

async fn get_checks(port: u16) -> Jobs {
    let ask = GetChecks {
        do_checks: true,
        worker_name: "poller-test".into(),
        ..Default::default()
    };
    client(port).post("get_checks", &ask, true).await.unwrap()
}

async fn commands(port: u16, lines: &[String]) -> Result<Vec<CommandOutcome>, shinken::protocol::CallError> {
    let body = ExternalCommands { commands: lines.to_vec() };
    client(port).post("run_external_commands", &body, true).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_commands_then_fencing_without_an_arbiter() {
    let tmp = TempDir::new("shinken-scheduler-commands").unwrap();
    let port = free_port();
    let main = write_config(tmp.path(), port);
    let d = Daemon::start(tmp.path(), port);
    let start = Instant::now();
    while client(port).health().await.is_err() {
        assert!(start.elapsed() < WAIT, "the scheduler does not answer\n{}", d.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Without a part: 409.
    let e = commands(port, &["PROCESS_HOST_CHECK_RESULT;web-1;0;UP".into()]).await.unwrap_err();
    assert_eq!(e.status(), Some(409), "{e}");

    // The part, as the arbiter cuts and sends it.
    let cfg = shinken_config::load(&main).unwrap();
    assert!(!cfg.has_errors(), "the test configuration has errors");
    let parts = shinken::arbiter::cut_config(&cfg).unwrap();
    assert_eq!(parts.len(), 1);
    let part = &parts[0];
    let part_id = part.id as u32;
    let conf = PutConf::Scheduler(SchedulerConf {
        scheduler_name: SCHEDULER.into(),
        part_id,
        epoch: 3,
        realm: part.realm.clone(),
        cfg: shinken::arbiter::part_cfg::part_cfg(&cfg, part),
        arbiter: "test".into(),
    });
    let ok: bool = client(port).post("put_conf", &conf, true).await.unwrap();
    assert!(ok);

    // Commands, in order, one outcome each.
    let now = unix_now().trunc();
    let lines = vec![
        format!("[{now}] PROCESS_SERVICE_CHECK_RESULT;web-1;app;2;CRITICAL: app down | t=1s"),
        format!("[{now}] ACKNOWLEDGE_SVC_PROBLEM;web-1;app;2;1;1;admin;looking at it"),
        format!(
            "[{now}] SCHEDULE_SVC_DOWNTIME;web-1;db;{};{};1;0;0;admin;upgrade",
            now - 10.0,
            now + 3600.0
        ),
        "this is not a command".to_string(),
        format!("[{now}] PROCESS_HOST_CHECK_RESULT;web-9;0;UP"),
        format!("[{now}] ACKNOWLEDGE_SVC_PROBLEM;web-1;db;1;1;1;admin;db is fine"),
    ];
    let out = commands(port, &lines).await.unwrap();
    assert_eq!(out.len(), lines.len(), "{out:?}");
    for (o, l) in out.iter().zip(&lines) {
        assert_eq!(&o.command, l);
    }
    assert!(out[0].ok && out[1].ok && out[2].ok, "{out:?}");
    assert!(
        !out[3].ok && out[3].error.as_deref().unwrap().starts_with("malformed command"),
        "{out:?}"
    );
    assert_eq!(out[4].error.as_deref(), Some("unknown host 'web-9'"));
    assert!(
        !out[5].ok && out[5].error.as_deref().unwrap().contains("no problem to acknowledge"),
        "{out:?}"
    );

    let st = status(port).await;
    let app = service(&st, "app");
    assert_eq!(app["state"], "CRITICAL", "{app}");
    assert_eq!(app["output"], "CRITICAL: app down");
    assert_eq!(app["perf_data"], "t=1s");
    assert_eq!(app["acknowledged"], true);
    assert_eq!(app["in_downtime"], false);
    let db = service(&st, "db");
    assert_eq!(
        (db["in_downtime"].as_bool(), db["acknowledged"].as_bool()),
        (Some(true), Some(false)),
        "{db}"
    );
    assert_eq!(st["fenced"], false);
    let logs = d.logs();
    assert!(
        logs.contains("EXTERNAL COMMAND: ACKNOWLEDGE_SVC_PROBLEM;web-1;app;2;1;1;admin;looking at it"),
        "{logs}"
    );
    assert!(logs.contains("SERVICE DOWNTIME ALERT: web-1;db;STARTED"), "{logs}");

    // Acting while an arbiter speaks: checks handed out, results taken.
    let start = Instant::now();
    let jobs = loop {
        ping(port).await;
        let jobs = get_checks(port).await;
        if !jobs.jobs.is_empty() {
            break jobs;
        }
        assert!(start.elapsed() < WAIT, "no checks handed out\n{}", d.logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(jobs.epoch, 3);
    let t = unix_now();
    let results = |jobs: &Jobs| PutResults {
        worker_name: "poller-test".into(),
        results: jobs
            .jobs
            .iter()
            .map(|j| JobResult {
                id: j.id,
                status: JobStatus::Done,
                exit_status: 0,
                output: "OK".into(),
                long_output: String::new(),
                perf_data: String::new(),
                start_time: t,
                execution_time: 0.01,
            })
            .collect(),
    };
    let taken: usize = client(port).post("put_results", &results(&jobs), true).await.unwrap();
    assert_eq!(taken, jobs.jobs.len());

    // Silence: fenced after the window (3 s).
    let silent_since = Instant::now();
    let start = Instant::now();
    let st = loop {
        let st = status(port).await;
        if st["fenced"] == true {
            break st;
        }
        assert!(start.elapsed() < WAIT, "never fenced: {st}\n{}", d.logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(silent_since.elapsed() >= Duration::from_secs(2), "fenced too early");
    assert_eq!(st["fencing"]["window"], 3.0);
    assert_eq!(st["fencing"]["cause"], "silence");
    assert!(
        st["fencing"]["reason"].as_str().unwrap().contains("no arbiter has spoken to me"),
        "{st}"
    );
    let fencing: Value = client(port).get("fencing", &[], false).await.unwrap();
    assert_eq!(fencing["fenced"], true);
    assert!(fencing["since"].as_f64().is_some());
    // poll-1 and poll-2 are due every second: none handed out while fenced.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let none = get_checks(port).await;
    assert!(none.jobs.is_empty(), "checks handed out while fenced: {none:?}");
    let e = client(port)
        .post::<_, usize>("put_results", &results(&jobs), true)
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(409), "{e}");
    let e = commands(port, &["REMOVE_SVC_ACKNOWLEDGEMENT;web-1;app".into()]).await.unwrap_err();
    assert_eq!(e.status(), Some(409), "{e}");
    let logs = d.logs();
    assert_eq!(logs.matches("No arbiter has spoken to me for").count(), 1, "{logs}");
    let stop = format!("(window 3 s): I stop acting on part {part_id} (epoch 3) until one does");
    assert!(logs.contains(&stop), "{logs}");

    // An arbiter speaks: acting again, checks handed out.
    let managed: Managed = client(port).get("what_i_managed", &[], false).await.unwrap();
    assert_eq!(managed, Managed::from([(part_id, 3)]));
    let st = status(port).await;
    assert_eq!(st["fenced"], false, "{st}");
    let again = get_checks(port).await;
    assert!(!again.jobs.is_empty(), "no checks after the arbiter spoke\n{}", d.logs());
    let resumed = format!("An arbiter spoke to me again: I act on part {part_id} (epoch 3) again");
    assert!(d.logs().contains(&resumed), "{}", d.logs());
    // The state set by commands is still there.
    let st = status(port).await;
    assert_eq!(service(&st, "app")["acknowledged"], true);
}
