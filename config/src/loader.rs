//! Reading a configuration tree from disk: the main file and what it includes.
//!
//! The only module of this crate that touches the filesystem. Include rules follow Shinken
//! (semantics reference, section 6.2): `cfg_file`, `cfg_dir` (recursive, `*.cfg`, symlinks
//! followed) and `resource_file` are honoured in the main file only, relative to its directory;
//! an included file is read as-is, so an include directive inside it is ignored (with a warning
//! here, where Shinken says nothing). That rule is also what makes include cycles impossible;
//! a symlink loop inside a `cfg_dir` is detected and reported.

use crate::diag::Diagnostics;
use crate::fasthash::{FastMap, FastSet};
use crate::object::{self, Object};
use crate::reader::{self, Param};
use crate::source::{FileId, Loc, SourceMap};
use std::path::{Path, PathBuf};

/// Names tried, in order, when the entry point is a directory.
pub const MAIN_FILE_NAMES: [&str; 3] = ["shinken.cfg", "nagios.cfg", "alignak.cfg"];

/// Largest file we read. A configuration file of this size is a mistake (or an attack), and
/// refusing it keeps memory bounded.
pub const MAX_FILE_BYTES: u64 = 256 << 20;

/// Every object and parameter of a tree, in reading order, with where each came from. Objects
/// are normalised ([`crate::object::normalise`]) but not yet inherited.
#[derive(Debug, Default)]
pub struct RawTree {
    pub main_file: PathBuf,
    pub sources: SourceMap,
    pub objects: Vec<Object>,
    /// Parameters of every file in reading order (a later one overrides an earlier one).
    pub params: Vec<Param>,
}

impl RawTree {
    /// A tree made of one main file held in memory (fuzzing, tests): parsed and normalised by
    /// the same rules as a file on disk; include directives are kept as parameters, not followed.
    pub fn from_text(main_file: PathBuf, text: &str, diag: &mut Diagnostics) -> RawTree {
        let mut sources = SourceMap::new();
        let id = sources.add(main_file.clone());
        let parsed = reader::parse(text, id, diag);
        RawTree {
            main_file,
            sources,
            objects: object::normalise(parsed.objects, diag),
            params: parsed.params,
        }
    }
}

/// The entry point cannot be read at all: the caller exits with status 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryError(pub String);

impl std::fmt::Display for EntryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EntryError {}

/// Finds the main file of an entry point: the file itself, or a directory's main file.
pub fn main_file(entry: &Path) -> Result<PathBuf, EntryError> {
    let meta = std::fs::metadata(entry).map_err(|e| EntryError(format!("{}: {e}", entry.display())))?;
    if !meta.is_dir() {
        return Ok(entry.to_path_buf());
    }
    MAIN_FILE_NAMES
        .iter()
        .map(|n| entry.join(n))
        .find(|p| p.is_file())
        .ok_or_else(|| EntryError(format!("{}: a directory without {}", entry.display(), MAIN_FILE_NAMES.join(", "))))
}

/// Reads the tree rooted at `entry`. Problems inside the tree go to `diag`; only an unreadable
/// entry point is an `Err`.
pub fn read_tree(entry: &Path, diag: &mut Diagnostics) -> Result<RawTree, EntryError> {
    let main = main_file(entry)?;
    let bytes = read_bounded(&main).map_err(|e| EntryError(format!("{}: {e}", main.display())))?;
    let text = reader::decode(&bytes).map_err(|e| EntryError(format!("{}: {e}", main.display())))?;
    let mut tree = RawTree {
        main_file: main.clone(),
        ..RawTree::default()
    };
    let main_id = tree.sources.add(main.clone());
    let parsed = reader::parse(&text, main_id, diag);
    drop(text);
    let main_objects = object::normalise(parsed.objects, diag);
    let base = main.parent().map(Path::to_path_buf).unwrap_or_default();

    // Every file the main file includes, in reading order, grouped by directive.
    let mut groups: Vec<(usize, Vec<FileId>)> = Vec::new();
    for (i, param) in parsed.params.iter().enumerate() {
        let mut files = Vec::new();
        match &*param.key {
            "cfg_file" | "resource_file" => files.push(base.join(&*param.value)),
            "cfg_dir" => {
                let mut stack = FastSet::default();
                list_dir(&base.join(&*param.value), param.loc, &mut stack, &mut files, diag);
            }
            _ => continue,
        }
        let ids = files.into_iter().map(|f| tree.sources.add(f)).collect();
        groups.push((i, ids));
    }
    let from: FastMap<FileId, Loc> = groups
        .iter()
        .flat_map(|(i, ids)| {
            let loc = parsed.params[*i].loc;
            ids.iter().map(move |id| (*id, loc))
        })
        .collect();
    let all: Vec<FileId> = groups.iter().flat_map(|(_, ids)| ids.iter().copied()).collect();
    let mut results = parse_files(&all, &tree.sources, &from);

    // Exact capacity: growing a vector of 100k objects by doubling costs more than parsing them.
    tree.objects
        .reserve_exact(main_objects.len() + results.values().map(|(c, _)| c.objects.len()).sum::<usize>());
    tree.objects.extend(main_objects);
    let mut next_group = groups.into_iter().peekable();
    for (i, param) in parsed.params.into_iter().enumerate() {
        if let Some((_, ids)) = next_group.next_if(|(g, _)| *g == i) {
            for id in ids {
                let (file_parsed, file_diag) = results.remove(&id).unwrap_or_default();
                diag.extend(file_diag);
                tree.objects.extend(file_parsed.objects);
                for p in file_parsed.params {
                    if matches!(&*p.key, "cfg_file" | "cfg_dir" | "resource_file") {
                        diag.warn(
                            p.loc,
                            "",
                            format!("`{}` is only honoured in the main file; ignored in an included file", p.key),
                        );
                    }
                    tree.params.push(p);
                }
            }
        }
        tree.params.push(param);
    }
    Ok(tree)
}

/// Reads and parses files on every core: files are independent, and reading is a third of the
/// load time of a large tree. `from` gives the include directive of each file, for messages.
fn parse_files(ids: &[FileId], sources: &SourceMap, from: &FastMap<FileId, Loc>) -> FastMap<FileId, (FileContent, Diagnostics)> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8)
        .min(ids.len().max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let Some(&id) = ids.get(i) else { break };
            let mut diag = Diagnostics::new();
            let parsed = parse_one(sources.path(id), id, from.get(&id).copied().unwrap_or_default(), &mut diag);
            done.push((id, (parsed, diag)));
        }
        done
    };
    let mut out = crate::fasthash::map_with_capacity(ids.len());
    if threads <= 1 {
        out.extend(work());
        return out;
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads).map(|_| scope.spawn(work)).collect();
        for h in handles {
            // A panic in a worker is a bug; surface it rather than lose files silently.
            out.extend(h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)));
        }
    });
    out
}

/// What one included file holds, its blocks already turned into objects.
#[derive(Default)]
struct FileContent {
    objects: Vec<Object>,
    params: Vec<Param>,
}

/// Reads one included file. `from` is the include directive, for messages. The file's raw
/// blocks become objects here, in the worker, so that the raw form of only one file is in
/// memory at a time: on large trees memory touched is most of the time spent.
fn parse_one(path: &Path, id: FileId, from: Loc, diag: &mut Diagnostics) -> FileContent {
    let bytes = match read_bounded(path) {
        Ok(b) => b,
        Err(e) => {
            diag.error(from, "", format!("cannot read included file {}: {e}", path.display()));
            return FileContent::default();
        }
    };
    match reader::decode(&bytes) {
        Ok(text) => {
            let parsed = reader::parse(&text, id, diag);
            FileContent {
                objects: object::normalise(parsed.objects, diag),
                params: parsed.params,
            }
        }
        Err(e) => {
            diag.error(Loc::new(id, 1), "", e);
            FileContent::default()
        }
    }
}

fn read_bounded(path: &Path) -> std::io::Result<Vec<u8>> {
    let meta = std::fs::metadata(path)?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(std::io::Error::other(format!(
            "file of {} bytes is larger than the {} allowed",
            meta.len(),
            MAX_FILE_BYTES
        )));
    }
    std::fs::read(path)
}

/// Lists every `*.cfg` under `dir`, recursively, sorted by name so that every machine reads a
/// tree in the same order (Shinken uses the filesystem's own order, which differs between
/// machines). `stack` holds the canonical directories being walked, to stop symlink loops.
fn list_dir(dir: &Path, from: Loc, stack: &mut FastSet<PathBuf>, files: &mut Vec<PathBuf>, diag: &mut Diagnostics) {
    let canonical = match std::fs::canonicalize(dir) {
        Ok(c) => c,
        Err(e) => {
            diag.error(from, "", format!("cannot read included directory {}: {e}", dir.display()));
            return;
        }
    };
    if !stack.insert(canonical.clone()) {
        diag.error(
            from,
            "",
            format!(
                "directory {} includes itself through a symbolic link; not read again",
                dir.display()
            ),
        );
        return;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(rd) => {
            let mut v: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
            v.sort();
            v
        }
        Err(e) => {
            diag.error(from, "", format!("cannot read included directory {}: {e}", dir.display()));
            stack.remove(&canonical);
            return;
        }
    };
    for path in entries {
        // metadata() follows symlinks, as Shinken's walk does.
        match std::fs::metadata(&path) {
            Ok(m) if m.is_dir() => list_dir(&path, from, stack, files, diag),
            Ok(m) if m.is_file() && path.extension().is_some_and(|e| e == "cfg") => files.push(path),
            Ok(_) => {}
            Err(e) => diag.warn(from, "", format!("skipping {}: {e}", path.display())),
        }
    }
    stack.remove(&canonical);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::Severity;

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("shinken-loader-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn reads_includes_in_order_and_resources() {
        let d = tmpdir("inc");
        std::fs::create_dir_all(d.join("objs/sub")).unwrap();
        std::fs::write(d.join("shinken.cfg"), "cfg_dir=objs\ncfg_file=extra.cfg\nresource_file=res.cfg\n").unwrap();
        std::fs::write(d.join("objs/b.cfg"), "define host {\nhost_name b\n}\n").unwrap();
        std::fs::write(d.join("objs/a.cfg"), "define host {\nhost_name a\n}\n").unwrap();
        std::fs::write(d.join("objs/sub/c.cfg"), "define host {\nhost_name c\n}\ncfg_dir=nested\n").unwrap();
        std::fs::write(d.join("objs/ignored.txt"), "define host {\nhost_name z\n}\n").unwrap();
        std::fs::write(d.join("extra.cfg"), "define command {\ncommand_name x\n}\n").unwrap();
        std::fs::write(d.join("res.cfg"), "$USER1$=/plugins\n").unwrap();
        let mut diag = Diagnostics::new();
        let tree = read_tree(&d, &mut diag).unwrap();
        let names: Vec<_> = tree.objects.iter().map(|o| o.attrs[0].value.to_string()).collect();
        assert_eq!(names, ["a", "b", "c", "x"]);
        assert!(tree.params.iter().any(|p| &*p.key == "$USER1$"));
        // The nested cfg_dir is ignored with a warning naming its file and line.
        let w = diag.reports(Severity::Warning, &tree.sources);
        assert_eq!(w.len(), 1);
        assert!(w[0].file.ends_with("objs/sub/c.cfg") && w[0].line == 4, "{w:?}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn missing_include_is_an_error_at_the_directive() {
        let d = tmpdir("missing");
        std::fs::write(d.join("nagios.cfg"), "\ncfg_file=nope.cfg\ncfg_dir=nodir\n").unwrap();
        let mut diag = Diagnostics::new();
        let tree = read_tree(&d, &mut diag).unwrap();
        let e = diag.reports(Severity::Error, &tree.sources);
        assert_eq!(e.len(), 2);
        let file = e.iter().find(|r| r.message.contains("nope.cfg")).unwrap();
        assert_eq!(file.line, 2);
        let dir = e.iter().find(|r| r.message.contains("nodir")).unwrap();
        assert_eq!(dir.line, 3);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn unreadable_entry_is_entry_error() {
        let mut diag = Diagnostics::new();
        assert!(read_tree(Path::new("/nonexistent/shinken.cfg"), &mut diag).is_err());
        let d = tmpdir("empty");
        assert!(read_tree(&d, &mut diag).is_err());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn symlink_loop_terminates() {
        let d = tmpdir("loop");
        std::fs::create_dir_all(d.join("objs")).unwrap();
        std::os::unix::fs::symlink(d.join("objs"), d.join("objs/again")).unwrap();
        std::fs::write(d.join("objs/a.cfg"), "define host {\nhost_name a\n}\n").unwrap();
        std::fs::write(d.join("shinken.cfg"), "cfg_dir=objs\n").unwrap();
        let mut diag = Diagnostics::new();
        let tree = read_tree(&d, &mut diag).unwrap();
        assert_eq!(tree.objects.len(), 1);
        assert!(diag.has_errors());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn binary_included_file_is_an_error() {
        let d = tmpdir("bin");
        std::fs::write(d.join("shinken.cfg"), "cfg_file=b.cfg\n").unwrap();
        std::fs::write(d.join("b.cfg"), b"\x7fELF\x00\x01").unwrap();
        let mut diag = Diagnostics::new();
        let tree = read_tree(&d, &mut diag).unwrap();
        let e = diag.reports(Severity::Error, &tree.sources);
        assert!(e[0].file.ends_with("b.cfg") && e[0].message.contains("binary"), "{e:?}");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
