//! The broker's exports end to end, with real processes on loopback ports chosen at run time
//! (an arbiter, a scheduler, a poller, a broker and a spare broker; checks run by
//! monitoring-plugins' `check_dummy`):
//!
//! - the open JSON API (`/api/v1/...`), `/metrics` and the monitoring log file, while a service
//!   is CRITICAL, recovers, and is acknowledged through an external command; then the master
//!   broker is killed and the spare, given the configuration by the arbiter, rebuilds the whole
//!   view from the scheduler's initial broks and shows the takeover;
//! - the web UI in a real browser: headless Chromium driven by `chromedriver` over the
//!   WebDriver HTTP protocol (a tiny client below): the CRITICAL service is listed among the
//!   problems in the live DOM and leaves them when it recovers; a screenshot is kept in
//!   `target/test-artifacts/broker-ui.png`. Chromium and chromedriver are required (Debian's
//!   `chromium` and `chromium-driver`): without them the test fails, saying so.
//!
//! `BROKER_WEB_TEST_LOGS=1` prints every daemon's log at the end of a test.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use shinken::messages::{CommandOutcome, ExternalCommands};
use shinken::protocol::{Client, Token};
use shinken_testkit::TempDir;

const SHINKEN: &str = env!("CARGO_BIN_EXE_shinken");
const SECRET: &str = "broker-web-test-token-0123456789abcdef";
const PLUGINS: &str = "/usr/lib/nagios/plugins";
/// The longest a test waits for anything.
const WAIT: Duration = Duration::from_secs(60);

fn free_ports(n: usize) -> Vec<u16> {
    let l: Vec<TcpListener> = (0..n).map(|_| TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    l.iter().map(|l| l.local_addr().unwrap().port()).collect()
}

/// The daemons of the test: (role, name, spare).
const DAEMONS: [(&str, &str, bool); 5] = [
    ("arbiter", "arbiter-1", false),
    ("scheduler", "scheduler-1", false),
    ("poller", "poller-1", false),
    ("broker", "broker-1", false),
    ("broker", "broker-2", true),
];

/// A cluster of real processes: SIGKILLed and reaped on drop.
struct Cluster {
    dir: PathBuf,
    ports: Vec<u16>,
    children: Vec<(String, Child)>,
}

impl Cluster {
    /// Writes the configuration (the check state file says CRITICAL) and starts `daemons`
    /// (names from [`DAEMONS`]), the arbiter last.
    fn start(dir: &Path, daemons: &[&str]) -> Cluster {
        let ports = free_ports(DAEMONS.len());
        write_config(dir, &ports);
        let mut c = Cluster {
            dir: dir.to_path_buf(),
            ports,
            children: Vec::new(),
        };
        // The arbiter once the others listen: its first probes find them all, so the master
        // broker is the one given the work (there is no failback from the spare).
        for arbiter in [false, true] {
            let these: Vec<_> = DAEMONS
                .iter()
                .filter(|(role, n, _)| daemons.contains(n) && (*role == "arbiter") == arbiter)
                .collect();
            for (role, name, _) in &these {
                c.spawn(role, name);
            }
            for (_, name, _) in &these {
                c.wait_up(name);
            }
        }
        c
    }

    fn port(&self, name: &str) -> u16 {
        self.ports[DAEMONS.iter().position(|(_, n, _)| *n == name).unwrap()]
    }

    fn spawn(&mut self, role: &str, name: &str) {
        let log = File::create(self.dir.join(format!("{name}.log"))).unwrap();
        let child = Command::new(SHINKEN)
            .arg(role)
            .arg("--config")
            .arg(self.dir.join("shinken.cfg"))
            .arg("--name")
            .arg(name)
            .env("SHINKEN_LOG", "info")
            .env("SHINKEN_STATE_DIR", self.dir.join(format!("state-{name}")))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start shinken");
        self.children.push((name.to_string(), child));
    }

    fn wait_up(&self, name: &str) {
        let port = self.port(name);
        let start = Instant::now();
        while http_get(port, "/health").is_err() {
            assert!(start.elapsed() < WAIT, "{name} does not listen on {port}\n{}", self.logs());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill(&mut self, name: &str) {
        for (n, c) in self.children.iter_mut().filter(|(n, _)| n == name) {
            let _ = c.kill();
            let _ = c.wait();
            let _ = n;
        }
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        for (_, name, _) in DAEMONS {
            if let Ok(text) = std::fs::read_to_string(self.dir.join(format!("{name}.log"))) {
                out.push_str(&format!("--- {name}\n{text}"));
            }
        }
        out
    }

    /// `GET path` on daemon `name` without a token, as JSON.
    fn api(&self, name: &str, path: &str) -> Value {
        let (code, body) = http_get(self.port(name), path).unwrap_or_else(|e| panic!("GET {path} on {name}: {e}"));
        assert_eq!(code, 200, "GET {path} on {name}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path} on {name}: {e}: {body}"))
    }

    /// Polls `what` until it gives `Some`, failing with `context` and the logs after [`WAIT`].
    fn wait_for<T>(&self, what: &str, mut f: impl FnMut() -> Option<T>, context: impl Fn() -> String) -> T {
        let start = Instant::now();
        loop {
            if let Some(v) = f() {
                return v;
            }
            assert!(
                start.elapsed() < WAIT,
                "{what}: not seen after {WAIT:?}\n{}\n{}",
                context(),
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Makes the `flip` service's next checks return `code`.
    fn set_flip(&self, code: u8) {
        let tmp = self.dir.join("flip-state.tmp");
        std::fs::write(&tmp, format!("{code}\n")).unwrap();
        std::fs::rename(&tmp, self.dir.join("flip-state")).unwrap();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for (_, c) in self.children.iter_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::env::var_os("BROKER_WEB_TEST_LOGS").is_some() {
            eprintln!("{}", self.logs());
        }
    }
}

/// The configuration: the daemons (probed every second, dead after 2 failures), a host and
/// three services checked every second: `ok` (OK), `critical` (always CRITICAL) and `flip`,
/// whose state is the number in the file `flip-state` (CRITICAL at first). broker-1 writes its
/// monitoring log where a `simple_log` module says; broker-2 (spare) at the default place.
fn write_config(dir: &Path, ports: &[u16]) {
    let mut text = String::from(
        "interval_length=1\nmax_service_check_spread=1\nmax_host_check_spread=1\n\
         service_check_timeout=10\nhost_check_timeout=10\nretention_update_interval=60\n\n",
    );
    for ((role, name, spare), port) in DAEMONS.iter().zip(ports) {
        let modules = if *name == "broker-1" { "    modules monitoring-log\n" } else { "" };
        text += &format!(
            "define {role} {{\n    {role}_name {name}\n    address 127.0.0.1\n    port {port}\n    spare {}\n    \
             timeout 1\n    data_timeout 30\n    check_interval 1\n    max_check_attempts 2\n    polling_interval 1\n{modules}}}\n",
            u8::from(*spare)
        );
    }
    text += "define module {\n    module_name monitoring-log\n    module_type simple_log\n    path logs/broker-1.log\n}\n";
    let flip = dir.join("check_flip.sh");
    std::fs::write(
        &flip,
        format!(
            "#!/bin/sh\nexec {PLUGINS}/check_dummy \"$(cat '{}')\" \"flip from file\"\n",
            dir.join("flip-state").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&flip, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(dir.join("flip-state"), "2\n").unwrap();
    text += &format!(
        "define command {{\n    command_name check_dummy\n    command_line {PLUGINS}/check_dummy $ARG1$ \"$SERVICEDESC$ is $ARG1$\"\n}}\n\
         define command {{\n    command_name check_flip\n    command_line {}\n}}\n",
        flip.display()
    );
    text += "define host {\n    host_name web-1\n    address 127.0.0.1\n    check_command check_dummy!0\n    \
             check_interval 1\n    retry_interval 1\n    max_check_attempts 2\n}\n";
    for (desc, cmd) in [("ok", "check_dummy!0"), ("critical", "check_dummy!2"), ("flip", "check_flip")] {
        text += &format!(
            "define service {{\n    host_name web-1\n    service_description {desc}\n    check_command {cmd}\n    \
             check_interval 1\n    retry_interval 1\n    max_check_attempts 2\n}}\n"
        );
    }
    std::fs::write(dir.join("shinken.cfg"), text).unwrap();
    let token = dir.join("shinken.token");
    std::fs::write(&token, SECRET).unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// One HTTP/1.1 exchange over a fresh connection: (status, body). The body is read by its
/// `Content-Length` (chromedriver keeps the connection open), else as chunks, else to the end.
fn http(port: u16, method: &str, path: &str, body: Option<&str>) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 16384];
    let head_end = loop {
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "no complete answer"));
        }
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).to_ascii_lowercase();
    let code = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let header = |name: &str| {
        head.lines().find_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.trim() == name)
                .map(|(_, v)| v.trim().to_string())
        })
    };
    let length = header("content-length").and_then(|v| v.parse::<usize>().ok());
    let chunked = header("transfer-encoding").is_some_and(|v| v.contains("chunked"));
    let mut rest = raw[head_end..].to_vec();
    loop {
        let done = match length {
            Some(n) => rest.len() >= n,
            None if chunked => rest.windows(5).any(|w| w == b"0\r\n\r\n"),
            None => false,
        };
        if done {
            break;
        }
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        rest.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&rest).into_owned();
    let body = if chunked { unchunk(&text) } else { text };
    Ok((code, body))
}

fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    http(port, "GET", path, None)
}

fn unchunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

fn find<'a>(list: &'a Value, service: &str) -> Option<&'a Value> {
    list.as_array()?.iter().find(|e| e["service_description"] == service)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn the_api_metrics_and_log_follow_the_states_and_a_spare_broker_rebuilds_the_view() {
    let tmp = TempDir::new("shinken-broker-web").unwrap();
    let c = &mut Cluster::start(tmp.path(), &["scheduler-1", "poller-1", "broker-1", "broker-2", "arbiter-1"]);
    let log1 = tmp.path().join("logs").join("broker-1.log");
    let log2 = tmp.path().join("state-broker-2").join("broker-2-monitoring.log");

    // The problems: both failing services, CRITICAL HARD, nothing else.
    let problems = c.wait_for(
        "critical and flip CRITICAL HARD among broker-1's problems",
        || {
            let p = c.api("broker-1", "/api/v1/problems");
            let hard = |s: &str| find(&p["problems"], s).is_some_and(|e| e["state"] == "CRITICAL" && e["state_type"] == "HARD");
            (hard("critical") && hard("flip")).then_some(p)
        },
        || format!("{}", c.api("broker-1", "/api/v1/problems")),
    );
    assert_eq!(problems["problems"].as_array().unwrap().len(), 2, "{problems}");
    assert_eq!(problems["problems"][0]["kind"], "service");
    assert!(problems["problems"][0]["severity"].as_u64().is_some());

    // Hosts, services, one host.
    let hosts = c.api("broker-1", "/api/v1/hosts");
    assert_eq!(hosts["hosts"][0]["host_name"], "web-1", "{hosts}");
    let services = c.api("broker-1", "/api/v1/services");
    assert_eq!(services["services"].as_array().unwrap().len(), 3, "{services}");
    assert!(find(&services["services"], "ok").is_some_and(|e| e["state"] == "OK"), "{services}");
    let host = c.api("broker-1", "/api/v1/hosts/web-1");
    assert_eq!(host["host"]["host_name"], "web-1");
    assert_eq!(host["services"].as_array().unwrap().len(), 3, "{host}");
    let (code, body) = http_get(c.port("broker-1"), "/api/v1/hosts/nope").unwrap();
    assert_eq!(code, 404, "{body}");
    // The page is open; the inter-daemon API still wants the token.
    let (code, page) = http_get(c.port("broker-1"), "/").unwrap();
    assert_eq!(code, 200);
    assert!(page.contains("id=\"problems\""), "{page}");
    let (code, _) = http_get(c.port("broker-1"), "/v1/status").unwrap();
    assert_eq!(code, 401);

    // Daemon health, from the arbiter: broker-1 active, broker-2 a spare, idle.
    let daemons = c.wait_for(
        "the daemons as the arbiter sees them",
        || {
            let d = c.api("broker-1", "/api/v1/daemons");
            let ds = d["daemons"].as_array()?.clone();
            let get = |n: &str| ds.iter().find(|x| x["name"] == n).cloned();
            let ok = d["arbiter"] == "arbiter-1"
                && get("broker-1").is_some_and(|b| b["active"] == true && b["alive"] == true)
                && get("broker-2").is_some_and(|b| b["spare"] == true && b["active"] == false)
                && get("scheduler-1").is_some_and(|s| s["active"] == true)
                && get("arbiter-1").is_some_and(|a| a["active"] == true);
            ok.then_some(d)
        },
        || format!("{}", c.api("broker-1", "/api/v1/daemons")),
    );
    assert_eq!(daemons["broker"]["name"], "broker-1");

    // Metrics.
    let (code, metrics) = http_get(c.port("broker-1"), "/metrics").unwrap();
    assert_eq!(code, 200);
    for needle in [
        "shinken_broker_services_by_state{state=\"CRITICAL\",state_type=\"HARD\"} 2\n",
        "shinken_broker_services_by_state{state=\"OK\",state_type=\"HARD\"} 1\n",
        "shinken_broker_hosts_by_state{state=\"UP\",state_type=\"HARD\"} 1\n",
        "shinken_broker_problems 2\n",
        "# TYPE shinken_broker_check_latency_seconds histogram\n",
        "# TYPE shinken_broker_check_execution_time_seconds histogram\n",
        "shinken_broker_broks_received_total{type=\"service_check_result\"} ",
        "shinken_broker_broks_per_second ",
        "shinken_broker_checks_per_second ",
        "shinken_broker_daemon_alive{name=\"broker-2\",role=\"broker\",spare=\"true\"} 1\n",
        "shinken_broker_daemon_active{name=\"broker-1\",role=\"broker\",spare=\"false\"} 1\n",
        "shinken_broker_takeovers_total 0\n",
    ] {
        assert!(metrics.contains(needle), "missing {needle:?} in\n{metrics}");
    }

    // The log file: initial states, then alerts (flip went CRITICAL before or after the broker
    // got the scheduler's initial state: one or the other says so).
    let text = read(&log1);
    for needle in ["] CURRENT HOST STATE: web-1;", "] CURRENT SERVICE STATE: web-1;"] {
        assert!(text.contains(needle), "missing {needle:?} in {}:\n{text}", log1.display());
    }
    assert!(
        text.contains("] SERVICE ALERT: web-1;flip;CRITICAL;HARD;2;")
            || text.contains("] CURRENT SERVICE STATE: web-1;flip;CRITICAL;HARD;2;"),
        "flip CRITICAL HARD not in {}:\n{text}",
        log1.display()
    );

    // flip recovers: it leaves the problems, the change and the alert are seen.
    c.set_flip(0);
    c.wait_for(
        "flip OK, out of the problems",
        || {
            let p = c.api("broker-1", "/api/v1/problems");
            (find(&p["problems"], "flip").is_none() && find(&p["problems"], "critical").is_some()).then_some(())
        },
        || format!("{}", c.api("broker-1", "/api/v1/problems")),
    );
    let events = c.api("broker-1", "/api/v1/events");
    let change = &events["state_changes"][0];
    assert_eq!(change["service_description"], "flip", "{events}");
    assert_eq!(
        (&change["from_state"], &change["state"]),
        (&json!("CRITICAL"), &json!("OK")),
        "{events}"
    );
    let host = c.api("broker-1", "/api/v1/hosts/web-1");
    assert!(
        host["state_changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|ch| ch["service_description"] == "flip" && ch["state"] == "OK"),
        "{host}"
    );
    assert!(
        find(&host["services"], "flip").unwrap()["last_state_change"].as_f64().is_some(),
        "{host}"
    );
    c.wait_for(
        "the recovery alert in the log file",
        || read(&log1).contains("] SERVICE ALERT: web-1;flip;OK;HARD;").then_some(()),
        || read(&log1),
    );

    // An external command reaches the log through the scheduler's broks.
    let sched = Client::new(
        &format!("http://127.0.0.1:{}", c.port("scheduler-1")),
        Token::new(SECRET).unwrap(),
        Duration::from_secs(5),
        Duration::from_secs(30),
    )
    .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let cmd = format!("[{now}] ACKNOWLEDGE_SVC_PROBLEM;web-1;critical;1;1;0;admin;looking at it");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let out: Vec<CommandOutcome> = rt
        .block_on(sched.post("run_external_commands", &ExternalCommands { commands: vec![cmd] }, false))
        .unwrap();
    assert!(out[0].ok, "{out:?}");
    c.wait_for(
        "the external command in the log file and the acknowledgement in the API",
        || {
            let acked = find(&c.api("broker-1", "/api/v1/problems")["problems"], "critical").is_some_and(|e| e["acknowledged"] == true);
            (acked && read(&log1).contains("] EXTERNAL COMMAND: ACKNOWLEDGE_SVC_PROBLEM;web-1;critical;")).then_some(())
        },
        || read(&log1),
    );

    // The master broker dies: the spare takes over and rebuilds the whole view.
    let (_, before) = http_get(c.port("broker-2"), "/api/v1/services").unwrap();
    assert!(
        before.contains("\"services\":[]"),
        "the spare has no view before the takeover: {before}"
    );
    c.kill("broker-1");
    let services = c.wait_for(
        "broker-2 showing every service",
        || {
            let s = c.api("broker-2", "/api/v1/services");
            let st = |d: &str| find(&s["services"], d).map(|e| (e["state"].clone(), e["state_type"].clone()));
            let full = st("critical") == Some((json!("CRITICAL"), json!("HARD")))
                && st("flip").is_some_and(|(s, _)| s == "OK")
                && st("ok").is_some_and(|(s, _)| s == "OK");
            full.then_some(s)
        },
        || format!("{}", c.api("broker-2", "/api/v1/services")),
    );
    assert!(
        find(&services["services"], "critical").unwrap()["acknowledged"] == true,
        "{services}"
    );
    assert_eq!(c.api("broker-2", "/api/v1/hosts")["hosts"][0]["host_name"], "web-1");
    let daemons = c.wait_for(
        "the takeover in broker-2's daemon health",
        || {
            let d = c.api("broker-2", "/api/v1/daemons");
            let ds = d["daemons"].as_array()?.clone();
            let get = |n: &str| ds.iter().find(|x| x["name"] == n).cloned();
            let ok = get("broker-1").is_some_and(|b| b["alive"] == false)
                && get("broker-2").is_some_and(|b| b["active"] == true)
                && d["takeovers"]
                    .as_array()
                    .is_some_and(|t| t.iter().any(|t| t["daemon"] == "broker-2"));
            ok.then_some(d)
        },
        || format!("{}", c.api("broker-2", "/api/v1/daemons")),
    );
    assert_eq!(daemons["broker"]["spare"], true);
    let (_, metrics) = http_get(c.port("broker-2"), "/metrics").unwrap();
    assert!(metrics.contains("shinken_broker_takeovers_total 1\n"), "{metrics}");
    assert!(
        metrics.contains("shinken_broker_daemon_alive{name=\"broker-1\",role=\"broker\",spare=\"false\"} 0\n"),
        "{metrics}"
    );
    let text = read(&log2);
    assert!(
        text.contains("] CURRENT SERVICE STATE: web-1;critical;CRITICAL;HARD;2;"),
        "{}:\n{text}",
        log2.display()
    );
}

// ---------------------------------------------------------------------------------------------
// The browser test.

/// The first of `names` found on PATH (or as an absolute path).
fn which(names: &[&str]) -> Option<PathBuf> {
    for n in names {
        let p = Path::new(n);
        if p.is_absolute() && p.is_file() {
            return Some(p.to_path_buf());
        }
        for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
            let p = dir.join(n);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// `chromedriver --port=<free port>`: killed on drop.
struct Driver {
    port: u16,
    child: Child,
    log: PathBuf,
}

impl Driver {
    fn start(dir: &Path) -> Driver {
        let bin = which(&["chromedriver", "/usr/lib/chromium/chromedriver"]).unwrap_or_else(|| {
            panic!(
                "chromedriver not found: the browser test needs Debian's chromium and chromium-driver \
                 (apt-get install -y chromium chromium-driver)"
            )
        });
        let port = free_ports(1)[0];
        let log = dir.join("chromedriver.log");
        let child = Command::new(bin)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let d = Driver { port, child, log };
        let start = Instant::now();
        loop {
            if let Ok((200, body)) = http_get(port, "/status")
                && body.contains("\"ready\":true")
            {
                break;
            }
            assert!(start.elapsed() < WAIT, "chromedriver not ready on port {port}:\n{}", read(&d.log));
            std::thread::sleep(Duration::from_millis(100));
        }
        d
    }

    /// One WebDriver command: its `value`, or WebDriver's error (`{"error": ..., "message": ...}`).
    fn try_call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, Value> {
        let text = body.map(|b| b.to_string());
        let (code, answer) = http(self.port, method, path, text.as_deref()).unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"));
        let v: Value = serde_json::from_str(&answer).unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}: {answer}"));
        if code == 200 {
            Ok(v["value"].clone())
        } else {
            Err(v["value"].clone())
        }
    }

    /// One WebDriver command: its `value`, or a panic with WebDriver's error.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.try_call(method, path, body)
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}\n{}", read(&self.log)))
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A browser session: deleted (Chromium closed) on drop.
struct Session<'a> {
    driver: &'a Driver,
    id: String,
}

impl<'a> Session<'a> {
    fn new(driver: &'a Driver, chromium: &Path, profile: &Path) -> Session<'a> {
        let args = [
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-background-networking".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            "--window-size=1280,1100".into(),
            format!("--user-data-dir={}", profile.display()),
        ];
        let caps = json!({
            "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": { "binary": chromium.display().to_string(), "args": args },
            }}
        });
        let v = driver.call("POST", "/session", Some(caps));
        let id = v["sessionId"].as_str().expect("a session id").to_string();
        Session { driver, id }
    }

    fn cmd(&self, method: &str, what: &str, body: Option<Value>) -> Value {
        self.driver.call(method, &format!("/session/{}/{what}", self.id), body)
    }

    fn go(&self, url: &str) {
        self.cmd("POST", "url", Some(json!({ "url": url })));
    }

    fn script(&self, script: &str) -> Value {
        self.cmd("POST", "execute/sync", Some(json!({ "script": script, "args": [] })))
    }

    /// The rows of table `table` in the live DOM: (host, service, state) of each item row.
    /// The page re-renders every 2 s: an element found just before a re-render is stale when
    /// read, and the search starts again.
    fn rows(&self, table: &str) -> Vec<(String, String, String)> {
        for _ in 0..20 {
            if let Some(rows) = self.try_rows(table) {
                return rows;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the rows of #{table} kept going stale");
    }

    fn try_rows(&self, table: &str) -> Option<Vec<(String, String, String)>> {
        // Found with WebDriver's element search, read through its attribute command.
        let found = self.cmd(
            "POST",
            "elements",
            Some(json!({ "using": "css selector", "value": format!("#{table} tbody tr[data-host]") })),
        );
        let mut out = Vec::new();
        for el in found.as_array().cloned().unwrap_or_default() {
            let id = el.as_object().and_then(|o| o.values().next()).and_then(|v| v.as_str())?.to_string();
            let attr = |a: &str| {
                let path = format!("/session/{}/element/{id}/attribute/{a}", self.id);
                match self.driver.try_call("GET", &path, None) {
                    Ok(v) => Some(v.as_str().unwrap_or("").to_string()),
                    Err(e) if e["error"] == "stale element reference" => None,
                    Err(e) => panic!("WebDriver GET {path}: {e}"),
                }
            };
            out.push((attr("data-host")?, attr("data-service")?, attr("data-state")?));
        }
        Some(out)
    }

    fn screenshot(&self, to: &Path) {
        let b64 = self.cmd("GET", "screenshot", None);
        let png = base64_decode(b64.as_str().expect("a base64 screenshot"));
        assert!(png.starts_with(b"\x89PNG"), "the screenshot is not a PNG");
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::write(to, png).unwrap();
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        let _ = http(self.driver.port, "DELETE", &format!("/session/{}", self.id), None);
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for v in s.bytes().filter_map(val) {
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// Where the screenshot is kept: `target/test-artifacts/broker-ui.png`.
fn artifact() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("test-artifacts")
        .join("broker-ui.png")
}

#[test]
fn the_web_ui_shows_a_critical_service_among_the_problems_until_it_recovers() {
    let chromium = which(&["chromium", "chromium-browser", "/usr/lib/chromium/chromium"]).unwrap_or_else(|| {
        panic!(
            "chromium not found: the browser test needs Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver)"
        )
    });
    let tmp = TempDir::new("shinken-broker-ui").unwrap();
    let c = Cluster::start(tmp.path(), &["scheduler-1", "poller-1", "broker-1", "arbiter-1"]);
    let driver = Driver::start(tmp.path());
    let profile = tmp.path().join("chromium-profile");
    std::fs::create_dir_all(&profile).unwrap();
    let s = Session::new(&driver, &chromium, &profile);
    let base = format!("http://127.0.0.1:{}/", c.port("broker-1"));
    s.go(&base);
    let is =
        |rows: &[(String, String, String)], svc: &str, state: &str| rows.iter().any(|(h, sv, st)| h == "web-1" && sv == svc && st == state);

    // The page renders the problems from the API, by itself.
    c.wait_for(
        "flip and critical CRITICAL in the page's problems",
        || {
            let rows = s.rows("problems");
            (is(&rows, "flip", "CRITICAL") && is(&rows, "critical", "CRITICAL")).then_some(())
        },
        || format!("{:?}\n{}", s.rows("problems"), s.script("return document.body.innerText")),
    );
    let rows = s.rows("problems");
    assert!(
        !rows.iter().any(|(_, sv, _)| sv == "ok"),
        "an OK service among the problems: {rows:?}"
    );
    // The other items may still be waiting for their first check: wait for them, not assume.
    c.wait_for(
        "the OK service and the UP host in the page",
        || {
            let host_up = is(&s.rows("hosts"), "", "UP") || s.rows("hosts").iter().any(|(h, _, st)| h == "web-1" && st == "UP");
            (is(&s.rows("services"), "ok", "OK") && host_up).then_some(())
        },
        || format!("{:?}\n{:?}", s.rows("services"), s.rows("hosts")),
    );
    // Daemon health is shown.
    c.wait_for(
        "the arbiter's view of the daemons in the page",
        || {
            let t = s.script("return document.querySelector('#daemons').innerText");
            t.as_str()
                .is_some_and(|t| t.contains("arbiter-1") && t.contains("scheduler-1") && t.contains("broker-1"))
                .then_some(())
        },
        || format!("{}", s.script("return document.querySelector('#daemons').innerText")),
    );

    // It recovers: the page drops it from the problems without being reloaded.
    s.script("window.__marker = 'same page'; return null");
    c.set_flip(0);
    c.wait_for(
        "flip out of the page's problems",
        || {
            let rows = s.rows("problems");
            (!rows.iter().any(|(_, sv, _)| sv == "flip") && is(&rows, "critical", "CRITICAL")).then_some(())
        },
        || format!("{:?}", s.rows("problems")),
    );
    assert_eq!(s.script("return window.__marker"), "same page", "the page was reloaded");
    assert!(is(&s.rows("services"), "flip", "OK"));
    assert!(
        s.rows("changes").iter().any(|(_, sv, st)| sv == "flip" && st.starts_with("OK")),
        "{:?}",
        s.rows("changes")
    );
    s.screenshot(&artifact());

    // One host's page lists its services.
    s.go(&format!("{base}#/host/web-1"));
    c.wait_for(
        "web-1's services on its page",
        || {
            let rows = s.rows("host-services");
            (rows.len() == 3 && is(&rows, "critical", "CRITICAL") && is(&rows, "flip", "OK")).then_some(())
        },
        || format!("{:?}", s.rows("host-services")),
    );
    assert_eq!(s.script("return document.getElementById('overview').hidden"), true);
}
