//! Garbage in, diagnostics out: hostile or broken trees must make `load` return (no panic, no
//! hang, no stack overflow) with the problem reported at the right file and line.
//!
//! Every load runs on its own thread (default stack size, so deep recursion shows up as a
//! crash) and is given 20 s: a hang fails the test instead of blocking the suite.

use shinken_config::diag::{Diagnostics, Report, Severity};
use shinken_config::loader::{EntryError, RawTree};
use shinken_config::{Config, load, reader};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

const BOUND: Duration = Duration::from_secs(20);

/// A fresh temporary directory, removed when dropped (also when the test fails).
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let d = std::env::temp_dir().join(format!("shinken-garbage-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let p = self.0.join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, contents).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `f` on its own thread and waits at most [`BOUND`] for it. A panic (or a stack
/// overflow, which aborts the process) or a hang fails the test.
fn within_bound<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::Builder::new()
        .name(format!("load {what}"))
        .spawn(move || {
            let _ = tx.send(f());
        })
        .unwrap();
    match rx.recv_timeout(BOUND) {
        Ok(v) => {
            handle.join().unwrap();
            v
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what}: did not return within {BOUND:?}"),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            let err = handle.join().expect_err("sender dropped without a panic");
            std::panic::resume_unwind(err)
        }
    }
}

fn load_bounded(entry: &Path) -> Result<Config, EntryError> {
    let entry = entry.to_path_buf();
    within_bound(&entry.display().to_string(), move || load(&entry))
}

fn errors(cfg: &Config) -> Vec<Report> {
    cfg.diag.reports(Severity::Error, &cfg.sources)
}

fn warnings(cfg: &Config) -> Vec<Report> {
    cfg.diag.reports(Severity::Warning, &cfg.sources)
}

/// The first report whose message contains `needle`, or a failure listing all of them.
fn find<'a>(reports: &'a [Report], needle: &str) -> &'a Report {
    reports
        .iter()
        .find(|r| r.message.contains(needle))
        .unwrap_or_else(|| panic!("no report containing {needle:?} in:\n{}", list(reports)))
}

fn list(reports: &[Report]) -> String {
    reports.iter().map(|r| format!("  {r}\n")).collect()
}

fn same_file(report: &Report, path: &Path) -> bool {
    Path::new(&report.file) == path
}

#[test]
fn binary_file_included_via_cfg_file_is_named() {
    let d = TempDir::new("binary");
    let main = d.write("shinken.cfg", "# main\ncfg_file=bin.cfg\n");
    let mut bin = b"define host {\n host_name x\n".to_vec();
    bin.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0xff, 0xfe, 0x00, 0x80]);
    let bin_path = d.write("bin.cfg", &bin);

    let cfg = load_bounded(&main).expect("the entry point is readable");
    let errs = errors(&cfg);
    let r = find(&errs, "binary file");
    assert!(same_file(r, &bin_path), "error names {} instead of {}", r.file, bin_path.display());
    assert_eq!(r.line, 1);
    assert!(r.message.contains("NUL byte at offset"), "{r}");
    // Nothing of the binary file is read as configuration.
    assert!(
        cfg.objects(shinken_config::schema::Kind::Host)
            .iter()
            .all(|h| h.name() != Some("x"))
    );
}

#[test]
fn binary_main_file_is_an_entry_error() {
    let d = TempDir::new("binary-main");
    let main = d.write("shinken.cfg", b"cfg_dir=objs\n\0\0\0");
    let err = load_bounded(&main).expect_err("a binary main file cannot be read");
    assert!(err.0.contains("binary file"), "{err}");
}

#[test]
fn unterminated_define_at_end_of_file_is_located_at_the_define() {
    let d = TempDir::new("unterminated");
    let main = d.write("shinken.cfg", "cfg_file=hosts.cfg\n");
    let hosts = d.write(
        "hosts.cfg",
        "define host {\n  host_name ok\n  address 127.0.0.1\n}\n\n; the last one is cut short\ndefine host {\n  host_name cut\n  address 10.0.0.1\n",
    );
    let cfg = load_bounded(&main).unwrap();
    let errs = errors(&cfg);
    let r = find(&errs, "never closed");
    assert!(same_file(r, &hosts), "{r}");
    assert_eq!(r.line, 7, "{r}");
    assert!(r.object.contains("cut"), "{r}");
}

#[test]
fn unterminated_define_without_brace_at_end_of_file() {
    let d = TempDir::new("unterminated-nobrace");
    let main = d.write("shinken.cfg", "cfg_file=hosts.cfg\n");
    let hosts = d.write("hosts.cfg", "define host {\n  host_name ok\n}\ndefine host\n");
    let cfg = load_bounded(&main).unwrap();
    let errs = errors(&cfg);
    let r = find(&errs, "without a body at end of file");
    assert!(same_file(r, &hosts), "{r}");
    assert_eq!(r.line, 4, "{r}");
}

#[test]
fn ten_megabyte_line_is_reported_not_hung_on() {
    let d = TempDir::new("longline");
    let main = d.write("shinken.cfg", "cfg_file=long.cfg\n");
    let mut text = String::with_capacity(10 << 20);
    text.push_str("define host {\n  host_name long\n  notes ");
    text.extend(std::iter::repeat_n('x', 10 << 20));
    text.push_str("\n  address 127.0.0.1\n}\n");
    let long = d.write("long.cfg", text);

    let cfg = load_bounded(&main).unwrap();
    let errs = errors(&cfg);
    let r = find(&errs, "longer than");
    assert!(same_file(r, &long), "{r}");
    assert_eq!(r.line, 3, "{r}");
}

#[test]
fn ten_megabyte_line_of_continuations_is_reported_not_hung_on() {
    // Many short physical lines joined by trailing backslashes into one enormous logical line.
    let d = TempDir::new("longcont");
    let main = d.write("shinken.cfg", "cfg_file=cont.cfg\n");
    let mut text = String::with_capacity(11 << 20);
    text.push_str("define host {\n  host_name cont\n  notes a\\\n");
    let chunk = format!("{}\\\n", "y".repeat(1023));
    for _ in 0..(10 << 10) {
        text.push_str(&chunk);
    }
    text.push_str("end\n}\n");
    let cont = d.write("cont.cfg", text);

    let cfg = load_bounded(&main).unwrap();
    let errs = errors(&cfg);
    let r = find(&errs, "longer than");
    assert!(same_file(r, &cont), "{r}");
    assert_eq!(r.line, 3, "{r}");
}

/// `t0` uses `t1` uses ... uses `t{n-1}`, and host `deep` uses `t0`. Returns the text and the
/// line of every `define`.
fn template_chain(n: usize) -> (String, Vec<u32>) {
    let mut text = String::new();
    let mut defines = Vec::new();
    let mut line = 1;
    for i in 0..n {
        defines.push(line);
        if i + 1 < n {
            text.push_str(&format!("define host {{\n  name t{i}\n  use t{}\n  register 0\n}}\n", i + 1));
            line += 5;
        } else {
            text.push_str(&format!(
                "define host {{\n  name t{i}\n  register 0\n  check_command check-host-alive\n}}\n"
            ));
            line += 5;
        }
    }
    defines.push(line);
    text.push_str("define host {\n  host_name deep\n  use t0\n  address 127.0.0.1\n}\n");
    (text, defines)
}

#[test]
fn template_chain_ten_thousand_deep_reports_depth_without_overflow() {
    let d = TempDir::new("deepchain");
    let main = d.write("shinken.cfg", "cfg_file=templates.cfg\n");
    let (text, defines) = template_chain(10_000);
    let templates = d.write("templates.cfg", text);

    let cfg = load_bounded(&main).unwrap();
    let errs = errors(&cfg);
    let r = find(&errs, "template chain deeper than");
    assert!(same_file(r, &templates), "{r}");
    assert!(
        defines.contains(&r.line),
        "depth error at line {}, not a `define` line: {r}",
        r.line
    );
}

#[test]
fn template_loop_is_an_error_at_a_member_of_the_loop() {
    let d = TempDir::new("loop");
    let main = d.write("shinken.cfg", "cfg_file=loop.cfg\n");
    let looped = d.write(
        "loop.cfg",
        "define host {\n  name a\n  use b\n  register 0\n}\ndefine host {\n  name b\n  use c\n  register 0\n}\n\
         define host {\n  name c\n  use a\n  register 0\n}\ndefine host {\n  host_name h\n  use a\n  address 127.0.0.1\n}\n",
    );
    let cfg = load_bounded(&main).unwrap();
    let errs = errors(&cfg);
    let r = find(&errs, "template loop");
    assert!(same_file(r, &looped), "{r}");
    assert!([1, 6, 11, 16].contains(&r.line), "{r}");
}

#[cfg(unix)]
#[test]
fn cfg_dir_with_a_symlink_to_itself_is_read_once() {
    let d = TempDir::new("symlinkdir");
    let main = d.write("shinken.cfg", "; objects\ncfg_dir=objs\n");
    d.write("objs/host.cfg", "define host {\n  host_name once\n  address 127.0.0.1\n}\n");
    std::os::unix::fs::symlink(".", d.path().join("objs/again")).unwrap();
    std::os::unix::fs::symlink(d.path().join("objs"), d.path().join("objs/sub.cfg")).unwrap();

    let cfg = load_bounded(&main).unwrap();
    let errs = errors(&cfg);
    let r = find(&errs, "includes itself");
    assert!(same_file(r, &main), "{r}");
    assert_eq!(r.line, 2, "{r}");
    let hosts = cfg.objects(shinken_config::schema::Kind::Host);
    assert_eq!(
        hosts.iter().filter(|h| h.name() == Some("once")).count(),
        1,
        "host read more than once"
    );
}

#[test]
fn main_file_including_itself_terminates() {
    let d = TempDir::new("selfinclude");
    let main = d.write(
        "shinken.cfg",
        "cfg_file=shinken.cfg\ncfg_dir=.\ndefine host {\n  host_name self\n  address 127.0.0.1\n}\n",
    );
    let cfg = load_bounded(&main).unwrap();
    let warns = warnings(&cfg);
    let r = find(&warns, "only honoured in the main file");
    assert!(same_file(r, &main), "{r}");
    assert!(r.line == 1 || r.line == 2, "{r}");
}

#[test]
fn unreadable_entry_is_an_err() {
    let d = TempDir::new("entry");
    let missing = d.path().join("does-not-exist.cfg");
    let err = load_bounded(&missing).expect_err("a missing entry point");
    assert!(err.0.contains("does-not-exist.cfg"), "{err}");

    // A directory without any main file.
    let err = load_bounded(d.path()).expect_err("a directory without a main file");
    assert!(err.0.contains("shinken.cfg"), "{err}");
}

/// xorshift64*: deterministic, no dependency.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Pieces of the language, so that random inputs get past the lexer into later stages.
const TOKENS: &[&str] = &[
    "define ",
    "host",
    "service",
    "hostgroup",
    "contact",
    "contactgroup",
    "timeperiod",
    "command",
    "servicedependency",
    "hostescalation",
    "realm",
    "scheduler",
    "poller",
    "{",
    "}",
    "\n",
    "\n",
    "\n",
    " ",
    "\t",
    ";",
    "#",
    "\\",
    "\\\n",
    "=",
    ",",
    "!",
    "&",
    "|",
    "(",
    ")",
    "*",
    "+",
    "-",
    "$",
    "$(",
    ")$",
    "[1-3]",
    ":",
    "00:00-24:00",
    "monday",
    "day",
    "-1",
    "/",
    "2",
    "name",
    "host_name",
    "hostgroup_name",
    "hostgroups",
    "members",
    "use",
    "register 0",
    "a",
    "b",
    "c",
    "service_description",
    "duplicate_foreach",
    "_disks",
    "$KEY$",
    "check_command",
    "parents",
    "exclude",
    "realm_members",
    "cfg_file",
    "é",
    "\u{feff}",
    "\r",
];

fn random_input(rng: &mut XorShift) -> Vec<u8> {
    let len = rng.below(4096) + 1;
    let mut out = Vec::with_capacity(len + 32);
    let pure_bytes = rng.below(4) == 0;
    while out.len() < len {
        if pure_bytes || rng.below(8) == 0 {
            out.push(rng.next() as u8);
        } else {
            out.extend_from_slice(TOKENS[rng.below(TOKENS.len())].as_bytes());
        }
    }
    out.truncate(len);
    out
}

/// The fuzz `pipeline` target, as a plain test: bytes -> decode -> parse -> tree -> every stage.
fn pipeline(bytes: &[u8]) {
    let Ok(text) = reader::decode(bytes) else {
        return;
    };
    let mut diag = Diagnostics::new();
    let tree = RawTree::from_text(PathBuf::from("random/shinken.cfg"), &text, &mut diag);
    let cfg = shinken_config::load::from_tree(tree, diag);
    // Every report must resolve its file without panicking.
    let _ = cfg.diag.reports(Severity::Error, &cfg.sources);
    let _ = cfg.diag.reports(Severity::Warning, &cfg.sources);
}

#[test]
fn random_bytes_through_the_pipeline_never_panic() {
    within_bound("200 random inputs", || {
        let mut rng = XorShift(0x5EED_0F51_114E_0011);
        for i in 0..200 {
            let mut input = random_input(&mut rng);
            // Half the pure-byte inputs would stop at `decode` on a NUL; keep most of them going.
            if i % 2 == 0 {
                for b in &mut input {
                    if *b == 0 {
                        *b = b' ';
                    }
                }
            }
            let result = std::panic::catch_unwind(|| pipeline(&input));
            if let Err(e) = result {
                let shown = String::from_utf8_lossy(&input);
                eprintln!("input #{i} ({} bytes) panicked:\n{shown:?}", input.len());
                std::panic::resume_unwind(e);
            }
        }
    });
}

/// A chain of `N` objects of one type, each naming the next through `link`, the last naming the
/// first (a loop 10000 long). Loading must neither overflow the stack nor hang.
fn deep_chain(tag: &str, define: impl Fn(usize, usize) -> String) -> (Config, PathBuf) {
    const N: usize = 10_000;
    let d = TempDir::new(tag);
    let main = d.write("shinken.cfg", "cfg_file=chain.cfg\n");
    let text: String = (0..N).map(|i| define(i, (i + 1) % N)).collect();
    let chain = d.write("chain.cfg", text);
    (load_bounded(&main).unwrap(), chain)
}

#[test]
fn host_parents_chain_ten_thousand_deep() {
    let (cfg, chain) = deep_chain("deepparents", |i, next| {
        format!("define host {{\n  host_name h{i}\n  address 127.0.0.1\n  parents h{next}\n}}\n")
    });
    let errs = errors(&cfg);
    let r = find(&errs, "parents: a loop");
    assert!(same_file(r, &chain), "{r}");
}

#[test]
fn hostgroup_members_chain_ten_thousand_deep() {
    let (cfg, chain) = deep_chain("deephostgroups", |i, next| {
        format!("define hostgroup {{\n  hostgroup_name g{i}\n  hostgroup_members g{next}\n}}\n")
    });
    let errs = errors(&cfg);
    assert!(errs.iter().all(|r| r.file.is_empty() || same_file(r, &chain)), "{}", list(&errs));
}

#[test]
fn contactgroup_members_chain_ten_thousand_deep() {
    let (cfg, chain) = deep_chain("deepcontactgroups", |i, next| {
        format!("define contactgroup {{\n  contactgroup_name c{i}\n  contactgroup_members c{next}\n}}\n")
    });
    let errs = errors(&cfg);
    assert!(errs.iter().all(|r| r.file.is_empty() || same_file(r, &chain)), "{}", list(&errs));
}

#[test]
fn timeperiod_exclude_chain_ten_thousand_deep() {
    let (cfg, chain) = deep_chain("deepexcludes", |i, next| {
        format!("define timeperiod {{\n  timeperiod_name t{i}\n  monday 00:00-24:00\n  exclude t{next}\n}}\n")
    });
    let errs = errors(&cfg);
    assert!(errs.iter().all(|r| r.file.is_empty() || same_file(r, &chain)), "{}", list(&errs));
}
