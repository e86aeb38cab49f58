//! Problems found while loading a configuration, collected in one pass.
//!
//! Loading never stops at the first problem: every stage records what it finds here and goes on,
//! so that a user sees every mistake of a tree at once, each with its file, line and object, the
//! way a compiler reports. Severities follow Shinken 2.4: what Shinken only warns about is a
//! warning here, what makes Shinken refuse the configuration is an error.

use crate::source::{Loc, SourceMap};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Error,
}

/// One problem, located. `object` names the object it belongs to (`host 'web1'`), or is empty
/// for file-level problems (an unreadable file, a bad main-file parameter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub severity: Severity,
    pub loc: Option<Loc>,
    pub object: String,
    pub message: String,
}

/// A problem with its file path spelled out, as printed and as serialised to JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub file: String,
    pub line: u32,
    pub object: String,
    pub message: String,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.file.is_empty(), self.object.is_empty()) {
            (false, false) => write!(f, "{}:{}: {}: {}", self.file, self.line, self.object, self.message),
            (false, true) => write!(f, "{}:{}: {}", self.file, self.line, self.message),
            (true, false) => write!(f, "{}: {}", self.object, self.message),
            (true, true) => write!(f, "{}", self.message),
        }
    }
}

/// The collector every loading stage writes into.
#[derive(Debug, Clone, Default)]
pub struct Diagnostics {
    problems: Vec<Problem>,
}

impl Diagnostics {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn warn(&mut self, loc: impl Into<Option<Loc>>, object: impl Into<String>, message: impl Into<String>) {
        self.push(Severity::Warning, loc.into(), object.into(), message.into());
    }

    pub fn error(&mut self, loc: impl Into<Option<Loc>>, object: impl Into<String>, message: impl Into<String>) {
        self.push(Severity::Error, loc.into(), object.into(), message.into());
    }

    pub fn push(&mut self, severity: Severity, loc: Option<Loc>, object: String, message: String) {
        self.problems.push(Problem {
            severity,
            loc,
            object,
            message,
        });
    }

    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }

    pub fn has_errors(&self) -> bool {
        self.problems.iter().any(|p| p.severity == Severity::Error)
    }

    pub fn count(&self, severity: Severity) -> usize {
        self.problems.iter().filter(|p| p.severity == severity).count()
    }

    pub fn extend(&mut self, other: Diagnostics) {
        self.problems.extend(other.problems);
    }

    /// The problems of one severity, in the order found, with paths resolved.
    pub fn reports(&self, severity: Severity, sources: &SourceMap) -> Vec<Report> {
        self.problems
            .iter()
            .filter(|p| p.severity == severity)
            .map(|p| Report {
                file: p.loc.map(|l| sources.path(l.file).display().to_string()).unwrap_or_default(),
                line: p.loc.map(|l| l.line).unwrap_or(0),
                object: p.object.clone(),
                message: p.message.clone(),
            })
            .collect()
    }
}
