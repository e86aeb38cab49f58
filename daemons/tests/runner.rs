//! The runner against real processes.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use shinken::runner::{Action, ActionResult, Outcome, Runner, RunnerConfig};

const CHECK_DUMMY: &str = "/usr/lib/nagios/plugins/check_dummy";

fn runner(max_concurrent: usize) -> Runner {
    Runner::new(RunnerConfig {
        max_concurrent,
        max_output_length: 8192,
    })
}

fn action(id: u64, command_line: &str) -> Action {
    Action {
        id,
        command_line: command_line.to_string(),
        timeout: Duration::from_secs(30),
        env: Vec::new(),
    }
}

async fn run(command_line: &str) -> ActionResult {
    runner(4).run(action(1, command_line)).await
}

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("shinken-runner-test-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn script(&self, name: &str, body: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, body).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Members of process group `pgid` that are not zombies (zombies are dead, waiting for init).
fn live_members(pgid: i32) -> Vec<i32> {
    let mut live = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid pgrp ..."; comm may hold spaces, so parse after the last ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() > 2 && fields[2] == pgid.to_string() && fields[0] != "Z" && fields[0] != "X" {
            live.push(pid);
        }
    }
    live
}

/// The group is gone: `kill(-pgid, 0)` fails with ESRCH, or only zombies remain (killed, not yet
/// reaped by init, which may be slow in a container).
fn group_gone(pgid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence.
    let rc = unsafe { libc::kill(-pgid, 0) };
    if rc == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH) {
        return true;
    }
    live_members(pgid).is_empty()
}

async fn wait_group_gone(pgid: i32) -> bool {
    // SIGKILL is asynchronous; allow a generous grace on a loaded machine.
    for _ in 0..100 {
        if group_gone(pgid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    group_gone(pgid)
}

#[tokio::test]
async fn check_dummy_states() {
    let expected = [(0, "OK: fine"), (1, "WARNING: fine"), (2, "CRITICAL: fine"), (3, "UNKNOWN: fine")];
    for (code, text) in expected {
        let r = run(&format!("{CHECK_DUMMY} {code} \"fine\"")).await;
        assert_eq!(r.outcome, Outcome::Exited(code), "{r:?}");
        assert_eq!(r.exit_status, code as u8);
        assert_eq!(r.output, text);
        assert_eq!(r.long_output, "");
        assert_eq!(r.perf_data, "");
        assert!(r.start_time > 1.0e9);
        assert!(r.execution_time >= 0.0);
    }
    let r = run(&format!("{CHECK_DUMMY} 2 \"boom\"")).await;
    assert_eq!((r.exit_status, r.output.as_str()), (2, "CRITICAL: boom"));
}

#[tokio::test]
async fn multi_line_output_with_perfdata() {
    let dir = TempDir::new("multiline");
    let script = dir.script(
        "check_multi",
        "#!/bin/sh\n\
         echo 'DISK WARNING - free space: / 3326 MB (56%) | /=2643MB;5948;5958;0;5968'\n\
         echo '/ 15272 MB (77%);'\n\
         echo '/boot 68 MB (69%);'\n\
         echo '/home 69357 MB (27%); | /boot=68MB;88;93;0;98'\n\
         echo '/home=69357MB;253404;253409;0;253414'\n\
         echo '/var/log=818MB;970;975;0;980'\n\
         exit 1\n",
    );
    let r = run(script.to_str().unwrap()).await;
    assert_eq!(r.outcome, Outcome::Exited(1));
    assert_eq!(r.exit_status, 1);
    assert_eq!(r.output, "DISK WARNING - free space: / 3326 MB (56%)");
    assert_eq!(r.long_output, "/ 15272 MB (77%);\n/boot 68 MB (69%);\n/home 69357 MB (27%);");
    assert_eq!(
        r.perf_data,
        "/=2643MB;5948;5958;0;5968 /boot=68MB;88;93;0;98 /home=69357MB;253404;253409;0;253414 /var/log=818MB;970;975;0;980"
    );
}

#[tokio::test]
async fn stderr_used_when_stdout_blank() {
    let r = run("sh -c 'echo \"CRITICAL: on stderr | x=1\" >&2; exit 2'").await;
    assert_eq!(r.exit_status, 2);
    assert_eq!(r.output, "CRITICAL: on stderr");
    assert_eq!(r.perf_data, "x=1");
}

#[tokio::test]
async fn timeout_kills_the_whole_group() {
    let r = runner(2);
    let started = Instant::now();
    let mut a = action(7, "/bin/sleep 10");
    a.timeout = Duration::from_millis(300);
    let res = r.run(a).await;
    assert_eq!(res.outcome, Outcome::TimedOut);
    assert_eq!(res.exit_status, 3);
    assert!(started.elapsed() < Duration::from_secs(8), "took {:?}", started.elapsed());
    assert!(res.execution_time >= 0.3);

    // A shell with a background grandchild: both must die.
    let dir = TempDir::new("timeout");
    let pidfile = dir.0.join("pgid");
    let line = format!("sh -c 'cut -d\" \" -f5 /proc/$$/stat > {}; sleep 30 & sleep 30'", pidfile.display());
    let mut a = action(8, &line);
    a.timeout = Duration::from_secs(3);
    let started = Instant::now();
    r.spawn(a);
    // While it runs, the group (outer sh, inner sh, two sleeps) is alive and observable.
    let pgid: i32 = wait_file(&pidfile).await.trim().parse().unwrap();
    assert!(pgid > 1);
    assert!(!live_members(pgid).is_empty());
    assert!(!group_gone(pgid));
    let res = tokio::time::timeout(Duration::from_secs(60), r.wait_results())
        .await
        .expect("no result");
    assert_eq!(res.len(), 1);
    assert_eq!(res[0].outcome, Outcome::TimedOut);
    assert_eq!(res[0].exit_status, 3);
    assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
    assert!(
        wait_group_gone(pgid).await,
        "process group {pgid} still alive: {:?}",
        live_members(pgid)
    );
}

#[tokio::test]
async fn background_grandchild_does_not_hold_the_result() {
    let dir = TempDir::new("bg");
    let pidfile = dir.0.join("pgid");
    let started = Instant::now();
    let r = run(&format!(
        "sh -c 'cut -d\" \" -f5 /proc/$$/stat > {}; sleep 30 & echo hi'",
        pidfile.display()
    ))
    .await;
    assert_eq!(r.outcome, Outcome::Exited(0));
    assert_eq!(r.output, "hi");
    assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
    let pgid: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    assert!(wait_group_gone(pgid).await, "process group {pgid} still alive");
}

#[tokio::test]
async fn output_is_capped_and_the_writer_drained() {
    let r = Runner::new(RunnerConfig {
        max_concurrent: 1,
        max_output_length: 8192,
    });
    // 1 MB on one line, then more lines; far beyond the 64 KiB pipe buffer.
    let line = "sh -c 'head -c 1000000 /dev/zero | tr \"\\0\" a; echo; echo \"second | p=1\"; exit 1'";
    let res = r.run(action(1, line)).await;
    assert_eq!(res.outcome, Outcome::Exited(1), "{:?}", res.outcome);
    assert_eq!(res.exit_status, 1);
    assert_eq!(res.output.len(), 8192);
    assert!(res.output.bytes().all(|b| b == b'a'));
    assert_eq!(res.long_output, "");
    assert_eq!(res.perf_data, "");

    // Same on stderr, with nothing on stdout.
    let line = "sh -c 'head -c 1000000 /dev/zero | tr \"\\0\" b >&2'";
    let res = r.run(action(2, line)).await;
    assert_eq!(res.outcome, Outcome::Exited(0));
    assert_eq!(res.output.len(), 8192);
}

#[tokio::test]
async fn abnormal_exit_codes_and_signals() {
    let r = run("sh -c 'exit 7'").await;
    assert_eq!(r.outcome, Outcome::Exited(7));
    assert_eq!(r.exit_status, 3);
    assert_eq!(r.output, "Abnormal termination with code: 7");

    let r = run("sh -c 'echo still here; exit 255'").await;
    assert_eq!(r.exit_status, 3);
    assert_eq!(r.output, "still here");

    // Run directly (no shell char in the line), so the dying shell is the runner's own child.
    let dir = TempDir::new("signal");
    let script = dir.script("check_segv", "#!/bin/sh\nkill -SEGV $$\n");
    let r = run(script.to_str().unwrap()).await;
    assert_eq!(r.outcome, Outcome::Signaled(libc::SIGSEGV));
    assert_eq!(r.exit_status, 3);
    assert_eq!(r.output, "signaled #11 (SIGSEGV)");
}

#[tokio::test]
async fn launch_failures() {
    let r = run("/nonexistent/check_nothing -H host").await;
    assert_eq!(r.exit_status, 2);
    match &r.outcome {
        Outcome::LaunchFailed(text) => assert!(text.contains("No such file or directory"), "{text}"),
        other => panic!("{other:?}"),
    }
    assert!(r.output.contains("[Errno 2] No such file or directory"), "{}", r.output);

    let dir = TempDir::new("launch");
    let path = dir.0.join("not_executable");
    std::fs::write(&path, "#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let r = run(path.to_str().unwrap()).await;
    // Root ignores permission bits except that at least one execute bit must be set.
    assert_eq!(r.exit_status, 2);
    assert!(matches!(r.outcome, Outcome::LaunchFailed(_)), "{:?}", r.outcome);
    assert!(r.output.contains("Permission denied"), "{}", r.output);

    let r = run("check_x 'unterminated").await;
    assert_eq!(r.exit_status, 3);
    assert_eq!(r.output, "Not a valid shell command: No closing quotation");
}

#[tokio::test]
async fn script_without_shebang_retries_through_the_shell() {
    let dir = TempDir::new("noshebang");
    let script = dir.script("check_plain", "echo 'OK - via sh | v=1'\nexit 0\n");
    let r = run(&format!("{} arg", script.display())).await;
    assert_eq!(r.outcome, Outcome::Exited(0), "{r:?}");
    assert_eq!(r.output, "OK - via sh");
    assert_eq!(r.perf_data, "v=1");
}

#[tokio::test]
async fn shell_path() {
    let r = run("echo a | tr a b").await;
    assert_eq!(r.outcome, Outcome::Exited(0));
    assert_eq!(r.output, "b");

    let r = run("echo 'unterminated").await;
    // Needs no shell char, so it is split, and fails to split.
    assert_eq!(r.exit_status, 3);

    let r = run("echo 'x' ; echo \"unterminated").await;
    assert_eq!(r.exit_status, 3, "{r:?}");
    assert!(r.output.contains("Syntax error"), "{}", r.output);
}

#[tokio::test]
async fn environment_is_daemon_env_plus_action_env() {
    let mut a = action(3, "sh -c 'echo \"$SHINKEN_TEST_VAR/${PATH:+path}\"'");
    a.env = vec![("SHINKEN_TEST_VAR".to_string(), "hello world".to_string())];
    let r = runner(1).run(a).await;
    assert_eq!(r.output, "hello world/path");
}

#[tokio::test]
async fn concurrency_bound_is_respected() {
    let r = runner(2);
    let started = Instant::now();
    for id in 0..10 {
        r.spawn(action(id, "/bin/sleep 0.2"));
    }
    assert_eq!(r.in_flight(), 10);
    let mut results = Vec::new();
    while results.len() < 10 {
        results.extend(r.wait_results().await);
    }
    let elapsed = started.elapsed();
    // 10 actions, 2 at a time, 0.2 s each: at least 5 rounds.
    assert!(elapsed >= Duration::from_millis(950), "took only {elapsed:?}");
    assert_eq!(r.in_flight(), 0);
    assert!(r.take_results().is_empty());
    let mut ids: Vec<u64> = results.iter().map(|r| r.id).collect();
    ids.sort();
    assert_eq!(ids, (0..10).collect::<Vec<_>>());
    assert!(results.iter().all(|r| r.outcome == Outcome::Exited(0) && r.exit_status == 0));
}

#[tokio::test]
async fn run_futures_share_the_bound() {
    let r = runner(2);
    let started = Instant::now();
    let (a, b, c, d) = tokio::join!(
        r.run(action(0, "/bin/sleep 0.2")),
        r.run(action(1, "/bin/sleep 0.2")),
        r.run(action(2, "/bin/sleep 0.2")),
        r.run(action(3, "/bin/sleep 0.2")),
    );
    assert!([a, b, c, d].iter().all(|res| res.exit_status == 0));
    // 4 actions, 2 at a time: at least 2 rounds of 0.2 s.
    assert!(started.elapsed() >= Duration::from_millis(380), "took only {:?}", started.elapsed());
    assert_eq!(r.in_flight(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_run_kills_the_group() {
    let dir = TempDir::new("cancel");
    let pidfile = dir.0.join("pgid");
    let r = runner(1);
    let line = format!("sh -c 'cut -d\" \" -f5 /proc/$$/stat > {}; sleep 30'", pidfile.display());
    let fut = r.run(action(1, &line));
    let _ = tokio::time::timeout(Duration::from_millis(500), fut).await;
    assert_eq!(r.in_flight(), 0);
    let pgid: i32 = wait_file(&pidfile).await.trim().parse().unwrap();
    assert!(wait_group_gone(pgid).await, "process group {pgid} still alive");
}

async fn wait_file(path: &Path) -> String {
    for _ in 0..100 {
        if let Ok(s) = std::fs::read_to_string(path)
            && !s.trim().is_empty()
        {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{} never written", path.display());
}
