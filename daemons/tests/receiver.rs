//! The receiver end to end, with real processes on loopback ports chosen at run time: an
//! arbiter dispatching two parts (two schedulers, one host each), a poller, a reactionner, a
//! broker and a receiver with `direct_routing 1` and a `named_pipe` module (`CommandFile`).
//!
//! Passive results sent to the receiver over HTTP and through its named pipe change the states
//! on the scheduler that owns the host; a malformed line, an unknown command, an unknown host and
//! a wrong argument count each get a clear error and change nothing; the issue's commands are
//! routed to the owning scheduler; a call without the token is refused. Every process is killed
//! and reaped on drop, whatever happens.
//!
//! `RECEIVER_TEST_LOGS=1 cargo test --test receiver -- --nocapture` prints every daemon's log.

use serde_json::Value;
use shinken::messages::{ExternalCommands, RoutedCommand};
use shinken::protocol::{Client, Token};
use shinken_testkit::TempDir;
use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SHINKEN: &str = env!("CARGO_BIN_EXE_shinken");
const SECRET: &str = "receiver-test-token-0123456789abcdef";
const WAIT: Duration = Duration::from_secs(40);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The daemons of the test: SIGKILLed and reaped on drop (a panic included).
struct Daemons {
    dir: PathBuf,
    children: Vec<(String, Child)>,
}

impl Daemons {
    fn start(&mut self, role: &str, name: &str) {
        // Appended: a restarted daemon keeps its earlier lines.
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("{name}.log")))
            .unwrap();
        let child = Command::new(SHINKEN)
            .args([role, "--config"])
            .arg(self.dir.join("shinken.cfg"))
            .args(["--name", name])
            .env("SHINKEN_LOG", "info")
            .env("SHINKEN_STATE_DIR", self.dir.join("state"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("start {role} {name}: {e}"));
        self.children.push((name.to_string(), child));
    }

    /// SIGKILLs and reaps `name`.
    fn kill(&mut self, name: &str) {
        if let Some(i) = self.children.iter().position(|(n, _)| n == name) {
            let (_, mut c) = self.children.remove(i);
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn log(&self, name: &str) -> String {
        fs::read_to_string(self.dir.join(format!("{name}.log"))).unwrap_or_default()
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        for (n, _) in &self.children {
            out += &format!("--- {n}\n{}", self.log(n));
        }
        out
    }
}

impl Drop for Daemons {
    fn drop(&mut self) {
        for (_, c) in self.children.iter_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::env::var_os("RECEIVER_TEST_LOGS").is_some() {
            eprintln!("{}", self.logs());
        }
    }
}

struct Ports {
    arbiter: u16,
    sched_a: u16,
    sched_b: u16,
    poller: u16,
    reactionner: u16,
    broker: u16,
    receiver: u16,
}

fn write_config(dir: &Path, p: &Ports, fifo: &Path) {
    let probe = "    check_interval 1\n    max_check_attempts 3\n    timeout 2\n    data_timeout 10\n";
    let daemon = |kind: &str, name: &str, port: u16, extra: &str| {
        format!("define {kind} {{\n    {kind}_name {name}\n    address 127.0.0.1\n    port {port}\n{probe}{extra}}}\n")
    };
    let mut text = String::from("interval_length=1\nmax_service_check_spread=1\nmax_host_check_spread=1\n\n");
    text += &daemon("arbiter", "arbiter-1", p.arbiter, "");
    text += &daemon("scheduler", "scheduler-a", p.sched_a, "");
    text += &daemon("scheduler", "scheduler-b", p.sched_b, "");
    text += &daemon("poller", "poller-1", p.poller, "");
    text += &daemon("reactionner", "reactionner-1", p.reactionner, "");
    text += &daemon("broker", "broker-1", p.broker, "");
    text += &daemon(
        "receiver",
        "receiver-1",
        p.receiver,
        "    direct_routing 1\n    modules CommandFile\n",
    );
    text += &format!(
        "define module {{\n    module_name CommandFile\n    module_type named_pipe\n    command_file {}\n}}\n",
        fifo.display()
    );
    text += "define command {\n    command_name check_dummy\n    command_line /usr/lib/nagios/plugins/check_dummy $ARG1$\n}\n";
    for h in ["web-1", "db-1"] {
        text += &format!(
            "define host {{\n    host_name {h}\n    address 127.0.0.1\n    check_command check_dummy!0\n    \
             check_interval 3600\n    max_check_attempts 1\n}}\n"
        );
        // Passive only: nothing but the commands sent here changes it.
        text += &format!(
            "define service {{\n    host_name {h}\n    service_description app\n    check_command check_dummy!0\n    \
             active_checks_enabled 0\n    passive_checks_enabled 1\n    check_interval 3600\n    retry_interval 1\n    max_check_attempts 1\n}}\n"
        );
        text += &format!(
            "define service {{\n    host_name {h}\n    service_description disk\n    check_command check_dummy!0\n    \
             check_interval 3600\n    retry_interval 1\n    max_check_attempts 1\n}}\n"
        );
    }
    fs::write(dir.join("shinken.cfg"), text).unwrap();
    let token = dir.join("shinken.token");
    fs::write(&token, SECRET).unwrap();
    fs::set_permissions(&token, fs::Permissions::from_mode(0o600)).unwrap();
}

fn client(port: u16) -> Client {
    Client::new(
        &format!("http://127.0.0.1:{port}"),
        Token::new(SECRET).unwrap(),
        Duration::from_secs(3),
        Duration::from_secs(20),
    )
    .unwrap()
}

/// A scheduler's items: `host` or `host/service` -> (state, state_type, output, acknowledged,
/// in_downtime).
type Items = BTreeMap<String, Item>;
type Item = (String, String, String, bool, bool);
/// An item's key and what must become true of it.
type Effect = (&'static str, fn(&Item) -> bool);

async fn items(port: u16) -> Option<(Option<u64>, Items)> {
    let v: Value = client(port).get("status", &[], false).await.ok()?;
    let mut out = Items::new();
    for list in ["hosts", "services"] {
        for i in v[list].as_array().into_iter().flatten() {
            let mut key = i["host_name"].as_str()?.to_string();
            if let Some(d) = i["service_description"].as_str() {
                key = format!("{key}/{d}");
            }
            let s = |k: &str| i[k].as_str().unwrap_or_default().to_string();
            out.insert(
                key,
                (
                    s("state"),
                    s("state_type"),
                    s("output"),
                    i["acknowledged"].as_bool().unwrap_or(false),
                    i["in_downtime"].as_bool().unwrap_or(false),
                ),
            );
        }
    }
    Some((v["part_id"].as_u64(), out))
}

async fn wait_for<T, F, Fut>(d: &Daemons, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}\n{}", d.logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Writes `text` into the FIFO without blocking: false while nobody reads it.
fn write_fifo(path: &Path, text: &str) -> bool {
    use std::os::unix::fs::OpenOptionsExt;
    let Ok(mut w) = fs::OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK).open(path) else {
        return false;
    };
    w.write_all(text.as_bytes()).is_ok()
}

/// Writes a passive result for db-1/app into the FIFO and waits for its scheduler to show it.
async fn through_the_pipe(d: &Daemons, fifo: &Path, port: u16, code: u8, state: &str, output: &str) {
    let line = format!("[{}] PROCESS_SERVICE_CHECK_RESULT;db-1;app;{code};{output}\n", unix_now() as u64);
    wait_for(d, &format!("a reader of {}", fifo.display()), || async {
        write_fifo(fifo, &line).then_some(())
    })
    .await;
    wait_for(d, &format!("db-1/app {state} through the pipe"), || async {
        let (_, b) = items(port).await?;
        b.get("db-1/app").is_some_and(|s| s.0 == state && s.2 == output).then_some(())
    })
    .await;
}

async fn send(port: u16, lines: &[&str]) -> Vec<RoutedCommand> {
    let body = ExternalCommands {
        commands: lines.iter().map(|l| l.to_string()).collect(),
    };
    let out: Vec<RoutedCommand> = client(port).post("run_external_commands", &body, false).await.unwrap();
    assert_eq!(out.len(), lines.len(), "{out:?}");
    out
}

/// `POST path` with `body` and optional bearer token over a fresh connection: (status, body).
fn raw_post(port: u16, path: &str, body: &str, token: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let code = answer.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (code, answer.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_receiver_routes_commands_from_http_and_its_named_pipe() {
    let tmp = TempDir::new("shinken-receiver-test").unwrap();
    let dir = tmp.path().to_path_buf();
    let ports = Ports {
        arbiter: free_port(),
        sched_a: free_port(),
        sched_b: free_port(),
        poller: free_port(),
        reactionner: free_port(),
        broker: free_port(),
        receiver: free_port(),
    };
    let fifo = dir.join("rw/nagios.cmd");
    write_config(&dir, &ports, &fifo);
    let mut d = Daemons {
        dir: dir.clone(),
        children: Vec::new(),
    };
    d.start("scheduler", "scheduler-a");
    d.start("scheduler", "scheduler-b");
    d.start("poller", "poller-1");
    d.start("reactionner", "reactionner-1");
    d.start("broker", "broker-1");
    d.start("receiver", "receiver-1");
    d.start("arbiter", "arbiter-1");

    // The receiver made its pipe at start.
    wait_for(&d, "the receiver's FIFO", || async {
        fs::symlink_metadata(&fifo).ok().filter(|m| m.file_type().is_fifo()).map(|_| ())
    })
    .await;

    // Both schedulers hold a part, and the receiver has both links.
    let scheds = [("scheduler-a", ports.sched_a), ("scheduler-b", ports.sched_b)];
    let mut owner: BTreeMap<String, (&str, u16)> = BTreeMap::new();
    for (name, port) in scheds {
        let (_, its) = wait_for(&d, &format!("{name} to hold a part"), || async move {
            items(port).await.filter(|(p, i)| p.is_some() && !i.is_empty())
        })
        .await;
        for k in its.keys().filter(|k| !k.contains('/')) {
            owner.insert(k.clone(), (name, port));
        }
    }
    assert_eq!(owner.len(), 2, "{owner:?}");
    assert_ne!(owner["web-1"].0, owner["db-1"].0, "one host per part: {owner:?}");
    wait_for(&d, "the receiver's two scheduler links", || async {
        let v: Value = client(ports.receiver).get("status", &[], false).await.ok()?;
        (v["schedulers"].as_array()?.len() == 2).then_some(())
    })
    .await;
    // Hosts checked once (their active checks run at start; the passive services stay pending).
    let before = {
        let mut all = Items::new();
        for (name, port) in scheds {
            let its = wait_for(&d, &format!("{name}'s first host checks"), || async move {
                let (_, i) = items(port).await?;
                i.iter()
                    .filter(|(k, _)| !k.contains('/') || k.ends_with("/disk"))
                    .all(|(_, v)| v.0 == "UP" || v.0 == "OK")
                    .then_some(i)
            })
            .await;
            all.extend(its);
        }
        all
    };

    // Over HTTP: two passive results, each to its host's scheduler, and four bad lines.
    let ts = unix_now() as u64;
    let web_result = format!("[{ts}] PROCESS_SERVICE_CHECK_RESULT;web-1;app;2;CRITICAL from HTTP");
    let out = send(
        ports.receiver,
        &[
            &web_result,
            "PROCESS_SERVICE_CHECK_RESULT;db-1;app;1;WARNING from HTTP",
            "this is not a command",
            "FROBNICATE_EVERYTHING;web-1;app",
            "PROCESS_SERVICE_CHECK_RESULT;ghost-1;app;2;nobody",
            "PROCESS_SERVICE_CHECK_RESULT;web-1;app;2",
        ],
    )
    .await;
    assert!(out[0].ok && out[0].schedulers == [owner["web-1"].0], "{:?}", out[0]);
    assert!(out[1].ok && out[1].schedulers == [owner["db-1"].0], "{:?}", out[1]);
    let err = |i: usize| out[i].error.clone().unwrap_or_default();
    assert!(!out[2].ok && err(2).contains("malformed"), "{:?}", out[2]);
    assert!(
        !out[3].ok && err(3).contains("unknown command 'FROBNICATE_EVERYTHING'"),
        "{:?}",
        out[3]
    );
    assert!(!out[4].ok && err(4).contains("unknown host 'ghost-1'"), "{:?}", out[4]);
    assert!(
        !out[5].ok && err(5).contains("PROCESS_SERVICE_CHECK_RESULT takes 4 arguments, got 3"),
        "{:?}",
        out[5]
    );
    for o in &out[2..] {
        assert!(o.schedulers.is_empty(), "{o:?}");
    }
    let after = wait_for(&d, "the passive results on their schedulers", || async {
        let (_, w) = items(owner["web-1"].1).await?;
        let (_, b) = items(owner["db-1"].1).await?;
        let ok = w.get("web-1/app").is_some_and(|s| s.0 == "CRITICAL" && s.2 == "CRITICAL from HTTP")
            && b.get("db-1/app").is_some_and(|s| s.0 == "WARNING" && s.2 == "WARNING from HTTP");
        ok.then(|| w.into_iter().chain(b).collect::<Items>())
    })
    .await;
    // Nothing else changed.
    for (k, v) in &before {
        if !k.ends_with("/app") {
            assert_eq!(&after[k], v, "{k} changed");
        }
    }
    let rlog = d.log("receiver-1");
    for line in [
        "EXTERNAL COMMAND: PROCESS_SERVICE_CHECK_RESULT;web-1;app;2;CRITICAL from HTTP",
        "EXTERNAL COMMAND: PROCESS_SERVICE_CHECK_RESULT;db-1;app;1;WARNING from HTTP",
        "External command refused: \"this is not a command\": malformed command",
        "unknown command 'FROBNICATE_EVERYTHING'",
        "unknown host 'ghost-1'",
        "takes 4 arguments, got 3",
    ] {
        assert!(rlog.contains(line), "missing {line:?} in the receiver's log:\n{rlog}");
    }

    // Through the named pipe: a garbage line (logged, nothing else), then a result, written by
    // two writers one after the other (the reader survives a writer closing).
    for text in [
        "garbage from the pipe\n".to_string(),
        format!("[{}] PROCESS_SERVICE_CHECK_RESULT;db-1;app;0;OK from the pipe\n", unix_now() as u64),
    ] {
        let mut w = fs::OpenOptions::new().write(true).open(&fifo).unwrap();
        w.write_all(text.as_bytes()).unwrap();
    }
    wait_for(&d, "db-1/app OK from the pipe", || async {
        let (_, b) = items(owner["db-1"].1).await?;
        b.get("db-1/app")
            .is_some_and(|s| s.0 == "OK" && s.2 == "OK from the pipe")
            .then_some(())
    })
    .await;
    // The receiver logs once the scheduler answered: the state may show first.
    wait_for(&d, "the pipe command's log line", || async {
        d.log("receiver-1")
            .contains("EXTERNAL COMMAND: PROCESS_SERVICE_CHECK_RESULT;db-1;app;0;OK from the pipe")
            .then_some(())
    })
    .await;
    let rlog = d.log("receiver-1");
    assert!(
        rlog.contains("EXTERNAL COMMAND: PROCESS_SERVICE_CHECK_RESULT;db-1;app;0;OK from the pipe"),
        "{rlog}"
    );
    assert!(rlog.contains("\"garbage from the pipe\": malformed command"), "{rlog}");

    // The issue's commands, each routed to the owning scheduler and having its effect.
    let now = unix_now() as u64;
    let web = owner["web-1"];
    let checks: Vec<(String, Option<Effect>)> = vec![
        (
            "ACKNOWLEDGE_SVC_PROBLEM;web-1;app;1;0;1;admin;looking at it".into(),
            Some(("web-1/app", |s| s.3)),
        ),
        ("REMOVE_SVC_ACKNOWLEDGEMENT;web-1;app".into(), Some(("web-1/app", |s| !s.3))),
        (
            format!("SCHEDULE_SVC_DOWNTIME;web-1;app;{now};{};1;0;3600;admin;maintenance", now + 3600),
            Some(("web-1/app", |s| s.4)),
        ),
        (
            format!("SCHEDULE_HOST_DOWNTIME;web-1;{now};{};1;0;3600;admin;maintenance", now + 3600),
            Some(("web-1", |s| s.4)),
        ),
        ("DISABLE_SVC_CHECK;web-1;disk".into(), None),
        ("ENABLE_SVC_CHECK;web-1;disk".into(), None),
        ("DISABLE_HOST_CHECK;web-1".into(), None),
        ("ENABLE_HOST_CHECK;web-1".into(), None),
        (format!("SCHEDULE_FORCED_HOST_CHECK;web-1;{now}"), None),
        (format!("SCHEDULE_FORCED_SVC_CHECK;web-1;disk;{now}"), None),
    ];
    for (line, effect) in &checks {
        let out = send(ports.receiver, &[line]).await;
        assert!(out[0].ok && out[0].schedulers == [web.0], "{line}: {:?}\n{}", out[0], d.log(web.0));
        if let Some((key, test)) = effect {
            wait_for(&d, &format!("the effect of {line}"), || async {
                let (_, i) = items(web.1).await?;
                i.get(*key).is_some_and(test).then_some(())
            })
            .await;
        }
    }
    // A passive host result (on db-1: no forced check of its own to race with). Code 2: the
    // scheduler reads a host's 1 as UP (Nagios's active-check rule) even for a passive result.
    let out = send(ports.receiver, &["PROCESS_HOST_CHECK_RESULT;db-1;2;DOWN from HTTP"]).await;
    assert!(out[0].ok && out[0].schedulers == [owner["db-1"].0], "{:?}", out[0]);
    wait_for(&d, "db-1 DOWN", || async {
        let (_, i) = items(owner["db-1"].1).await?;
        i.get("db-1")
            .is_some_and(|s| s.0 == "DOWN" && s.2 == "DOWN from HTTP")
            .then_some(())
    })
    .await;
    // A command without host goes to both schedulers; an unknown downtime id is refused by both.
    let out = send(ports.receiver, &["DEL_SVC_DOWNTIME;12345"]).await;
    assert!(!out[0].ok, "{:?}", out[0]);
    let e = out[0].error.clone().unwrap_or_default();
    assert!(
        e.contains("scheduler scheduler-a: ") && e.contains("scheduler scheduler-b: ") && e.contains("12345"),
        "{e}"
    );
    // Notifications and comments: routed to the owner; applied if its scheduler knows them.
    for line in [
        "DISABLE_SVC_NOTIFICATIONS;web-1;app",
        "ENABLE_SVC_NOTIFICATIONS;web-1;app",
        "DISABLE_HOST_NOTIFICATIONS;web-1",
        "ENABLE_HOST_NOTIFICATIONS;web-1",
        "ADD_SVC_COMMENT;web-1;app;1;admin;a comment",
        "ADD_HOST_COMMENT;web-1;1;admin;a comment",
    ] {
        let out = send(ports.receiver, &[line]).await;
        let routed = out[0].ok && out[0].schedulers == [web.0]
            || out[0]
                .error
                .as_deref()
                .is_some_and(|e| e.starts_with(&format!("scheduler {}: ", web.0)));
        assert!(routed, "{line}: {:?}", out[0]);
    }

    // The token is required.
    let body = r#"{"commands":["PROCESS_SERVICE_CHECK_RESULT;web-1;app;0;sneaky"]}"#;
    let (code, _) = raw_post(ports.receiver, "/v1/run_external_commands", body, None);
    assert_eq!(code, 401, "no token");
    let (code, _) = raw_post(
        ports.receiver,
        "/v1/run_external_commands",
        body,
        Some("wrong-token-0123456789abcdef0123"),
    );
    assert!(code == 401 || code == 403, "wrong token: {code}");
    let (_, w) = items(web.1).await.unwrap();
    assert_ne!(w["web-1/app"].2, "sneaky");
    assert!(!d.log("receiver-1").contains("sneaky"));

    // The FIFO removed while the receiver runs: made again, and read.
    let ino = |p: &Path| {
        use std::os::unix::fs::MetadataExt;
        fs::symlink_metadata(p).ok().filter(|m| m.file_type().is_fifo()).map(|m| m.ino())
    };
    let first = ino(&fifo).unwrap();
    fs::remove_file(&fifo).unwrap();
    wait_for(&d, "the FIFO made again", || async { ino(&fifo) }).await;
    through_the_pipe(&d, &fifo, owner["db-1"].1, 2, "CRITICAL", "CRITICAL after the pipe was made again").await;
    let second = ino(&fifo).unwrap();
    assert_ne!(first, second);

    // The receiver restarted: it keeps the FIFO there, gets its configuration again from the
    // arbiter, and reads it.
    d.kill("receiver-1");
    d.start("receiver", "receiver-1");
    wait_for(&d, "the restarted receiver's two scheduler links", || async {
        let v: Value = client(ports.receiver).get("status", &[], false).await.ok()?;
        (v["schedulers"].as_array()?.len() == 2).then_some(())
    })
    .await;
    assert_eq!(ino(&fifo), Some(second), "the FIFO is kept across a restart");
    through_the_pipe(&d, &fifo, owner["db-1"].1, 0, "OK", "OK after a restart").await;

    // Every daemon still runs.
    for (name, c) in d.children.iter_mut() {
        assert!(c.try_wait().unwrap().is_none(), "{name} exited");
    }
}
