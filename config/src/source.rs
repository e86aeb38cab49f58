//! Where a piece of configuration came from: a file and a line.
//!
//! Every object, every attribute and every problem carries a [`Loc`]. Files are numbered in the
//! order they are read and their paths kept once in a [`SourceMap`], so a location costs 8 bytes.

use std::path::{Path, PathBuf};

/// Index of a file in the [`SourceMap`].
pub type FileId = u32;

/// A position in the configuration: file and 1-based line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Loc {
    pub file: FileId,
    pub line: u32,
}

impl Loc {
    pub const fn new(file: FileId, line: u32) -> Self {
        Self { file, line }
    }
}

/// The paths of every file read, indexed by [`FileId`].
#[derive(Debug, Clone, Default)]
pub struct SourceMap {
    files: Vec<PathBuf>,
}

impl SourceMap {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a file and returns its id. The same path read twice gets two ids, which is what
    /// Shinken does too (a nested `cfg_dir` reads its files twice).
    pub fn add(&mut self, path: PathBuf) -> FileId {
        self.files.push(path);
        (self.files.len() - 1) as FileId
    }

    pub fn path(&self, id: FileId) -> &Path {
        self.files
            .get(id as usize)
            .map(PathBuf::as_path)
            .unwrap_or_else(|| Path::new("<unknown>"))
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    pub fn files(&self) -> impl Iterator<Item = &Path> {
        self.files.iter().map(PathBuf::as_path)
    }
}
