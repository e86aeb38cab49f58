//! Nagios 4 as an oracle: writing a main configuration file it accepts, running `nagios4 -v`
//! (verification counts) and `nagios4 -pv` (the fully resolved objects of its precache file).

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where Debian's `nagios4-core` installs the daemon; `NAGIOS4` in the environment overrides it.
pub const DEFAULT_BINARY: &str = "/usr/sbin/nagios4";

/// The object types `nagios4 -v` counts, with the names it prints.
pub const COUNTED_TYPES: [&str; 12] = [
    "hosts",
    "services",
    "host groups",
    "service groups",
    "contacts",
    "contact groups",
    "commands",
    "time periods",
    "host escalations",
    "service escalations",
    "host dependencies",
    "service dependencies",
];

/// The Nagios binary to run.
pub fn binary() -> PathBuf {
    std::env::var_os("NAGIOS4")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_BINARY))
}

/// Writes `dir/main.cfg` for the object files under `dir/<objects_dir>` and the resource file
/// `dir/resource.cfg` (which the caller writes). Relative `cfg_dir`/`resource_file` are
/// resolved by Nagios and Shinken alike against the main file's directory; every runtime path
/// Nagios insists on points into `dir/var` (created here, with its `checkresults` spool).
/// Nagios runs as root here, so `nagios_user`/`nagios_group` are root.
pub fn write_main_cfg(dir: &Path, objects_dir: &str) -> io::Result<PathBuf> {
    let var = dir.join("var");
    std::fs::create_dir_all(var.join("checkresults"))?;
    let v = |name: &str| var.join(name).display().to_string();
    let text = format!(
        "# Main configuration, readable by Nagios 4 and Shinken.\n\
         cfg_dir={objects_dir}\n\
         resource_file=resource.cfg\n\
         log_file={}\n\
         lock_file={}\n\
         temp_file={}\n\
         temp_path={}\n\
         status_file={}\n\
         state_retention_file={}\n\
         object_cache_file={}\n\
         precached_object_file={}\n\
         command_file={}\n\
         check_result_path={}\n\
         nagios_user=root\n\
         nagios_group=root\n\
         illegal_object_name_chars=`~!$%^&*|'\"<>?,()=\n\
         illegal_macro_output_chars=`~$&|'\"<>\n",
        v("nagios.log"),
        v("nagios.lock"),
        v("nagios.tmp"),
        var.display(),
        v("status.dat"),
        v("retention.dat"),
        v("objects.cache"),
        v("objects.precache"),
        v("nagios.cmd"),
        v("checkresults"),
    );
    let path = dir.join("main.cfg");
    std::fs::write(&path, text)?;
    Ok(path)
}

/// What `nagios4 -v` said.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verification {
    /// `Checked N <type>.` per type of [`COUNTED_TYPES`] (only those printed).
    pub counts: BTreeMap<String, u64>,
    /// `Total Warnings: N`.
    pub warnings: u64,
    /// `Total Errors: N`; when Nagios stops before its pre-flight check (unreadable
    /// configuration) it prints no total, and this counts its `Error:` lines (at least 1).
    pub errors: u64,
    /// Whether Nagios exited 0.
    pub success: bool,
    /// Everything it printed (stdout then stderr).
    pub output: String,
}

impl Verification {
    /// The count printed for `kind` (one of [`COUNTED_TYPES`]), 0 when absent.
    pub fn count(&self, kind: &str) -> u64 {
        self.counts.get(kind).copied().unwrap_or(0)
    }
}

/// Parses the output of `nagios4 -v`.
///
/// Nagios prints `\tChecked N <type>.` (with a full stop) while checking objects, then, while
/// checking for circular paths, `\tChecked N hosts`, `\tChecked N service dependencies`,
/// `\tChecked N host dependencies` and `\tChecked N timeperiods` without one: the dependency
/// counts come from the second block only. Then `Total Warnings: N` and `Total Errors:   N`.
pub fn parse_verification(output: &str, success: bool) -> Verification {
    let mut v = Verification {
        success,
        output: output.to_owned(),
        ..Verification::default()
    };
    let mut totals = false;
    let mut error_lines = 0;
    for line in output.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("Checked ") {
            let Some((n, name)) = rest.split_once(' ') else {
                continue;
            };
            let Ok(n) = n.parse::<u64>() else { continue };
            let (name, full_stop) = match name.strip_suffix('.') {
                Some(name) => (name, true),
                None => (name, false),
            };
            let dependency = name == "host dependencies" || name == "service dependencies";
            if (full_stop || dependency) && COUNTED_TYPES.contains(&name) {
                v.counts.insert(name.to_owned(), n);
            }
        } else if let Some(n) = line.strip_prefix("Total Warnings:") {
            v.warnings = n.trim().parse().unwrap_or(0);
        } else if let Some(n) = line.strip_prefix("Total Errors:") {
            v.errors = n.trim().parse().unwrap_or(0);
            totals = true;
        } else if line.starts_with("Error:") {
            error_lines += 1;
        }
    }
    if !totals {
        v.errors = error_lines.max(u64::from(!success));
    }
    v
}

fn run(args: &[&str], main_cfg: &Path) -> io::Result<(bool, String)> {
    let bin = binary();
    let out = Command::new(&bin)
        .args(args)
        .arg(main_cfg)
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot run {}: {e}", bin.display())))?;
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    Ok((out.status.success(), text))
}

/// Runs `nagios4 -v main_cfg`. Fails (rather than pretending) when Nagios cannot be run.
pub fn verify(main_cfg: &Path) -> io::Result<Verification> {
    let (ok, text) = run(&["-v"], main_cfg)?;
    Ok(parse_verification(&text, ok))
}

/// One object of the precache file: its type and its attributes in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Object {
    /// `host`, `service`, `timeperiod`...
    pub kind: String,
    /// Attribute name and value, tab separated in the file; a date range's name may hold
    /// spaces (`day 1 - 15`).
    pub attrs: Vec<(String, String)>,
}

impl Object {
    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.attrs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// Parses a Nagios object cache / precache file: `define T {`, then one `\tname\tvalue` line
/// per attribute, then `\t}`.
pub fn parse_objects(text: &str) -> Vec<Object> {
    let mut objects = Vec::new();
    let mut current: Option<Object> = None;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if let Some(rest) = trimmed.strip_prefix("define ") {
            let kind = rest.trim_end_matches('{').trim();
            current = Some(Object {
                kind: kind.to_owned(),
                attrs: Vec::new(),
            });
        } else if trimmed == "}" {
            objects.extend(current.take());
        } else if let Some(obj) = current.as_mut() {
            let line = line.trim_start_matches('\t');
            let (k, v) = match line.split_once('\t') {
                Some((k, v)) => (k, v),
                None => (line, ""),
            };
            obj.attrs.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    objects
}

/// Runs `nagios4 -pv main_cfg` and reads back the precached object file named in `main_cfg`.
/// Returns an error holding Nagios's output when it does not write the file (invalid config).
pub fn precache(main_cfg: &Path) -> io::Result<(Verification, Vec<Object>)> {
    let main_text = std::fs::read_to_string(main_cfg)?;
    let file = main_text
        .lines()
        .find_map(|l| l.trim().strip_prefix("precached_object_file="))
        .map(|p| {
            let p = Path::new(p.trim());
            match main_cfg.parent() {
                Some(dir) if p.is_relative() => dir.join(p),
                _ => p.to_path_buf(),
            }
        })
        .ok_or_else(|| io::Error::other("no precached_object_file in the main cfg"))?;
    let _ = std::fs::remove_file(&file);
    let (ok, text) = run(&["-pv"], main_cfg)?;
    let verification = parse_verification(&text, ok);
    let objects =
        std::fs::read_to_string(&file).map_err(|e| io::Error::other(format!("nagios4 -pv wrote no {}: {e}\n{text}", file.display())))?;
    Ok((verification, parse_objects(&objects)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_counts_and_totals() {
        let out = "Checking objects...\n\tChecked 3 services.\n\tChecked 2 hosts.\n\
                   \tChecked 1 host groups.\n\tChecked 0 host escalations.\n\
                   Checking for circular paths...\n\tChecked 2 hosts\n\
                   \tChecked 4 service dependencies\n\tChecked 1 host dependencies\n\
                   \tChecked 7 timeperiods\nTotal Warnings: 2\nTotal Errors:   0\n";
        let v = parse_verification(out, true);
        assert_eq!(v.count("services"), 3);
        assert_eq!(v.count("hosts"), 2);
        assert_eq!(v.count("host groups"), 1);
        assert_eq!(v.count("service dependencies"), 4);
        assert_eq!(v.count("host dependencies"), 1);
        assert!(!v.counts.contains_key("timeperiods"));
        assert_eq!((v.warnings, v.errors), (2, 0));
    }

    #[test]
    fn unreadable_config_counts_errors() {
        let v = parse_verification("Error: Could not parse\n   Error processing object config files!\n", false);
        assert_eq!(v.errors, 1);
    }

    #[test]
    fn parses_objects() {
        let text = "# header\n\ndefine timeperiod {\n\ttimeperiod_name\t24x7\n\tday 1 - 15\t00:00-12:00\n\t}\n\n\
                    define host {\n\thost_name\th1\n\t_PORT\t80\n\t}\n";
        let objs = parse_objects(text);
        assert_eq!(objs.len(), 2);
        assert_eq!(objs[0].kind, "timeperiod");
        assert_eq!(objs[0].get("day 1 - 15"), Some("00:00-12:00"));
        assert_eq!(objs[1].get("_PORT"), Some("80"));
    }
}
