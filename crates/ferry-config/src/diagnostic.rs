//! Problems found in a configuration file, with where they are and what to do.

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file.
    pub file: PathBuf,
    /// 1-based line (0 when the problem concerns the whole file).
    pub line: usize,
    /// 1-based column (0 when unknown).
    pub column: usize,
    /// The dotted key path, e.g. `jobs.test.needs[0]`.
    pub key: String,
    /// What is wrong.
    pub message: String,
    /// What to do about it, e.g. "did you mean `needs`?".
    pub hint: Option<String>,
}

impl Diagnostic {
    /// A problem with the file as a whole (cannot be read, empty, …).
    pub fn file_error(file: &Path, message: String) -> Self {
        Diagnostic {
            file: file.to_path_buf(),
            line: 0,
            column: 0,
            key: String::new(),
            message,
            hint: None,
        }
    }

    /// A problem at `line:column` under `key`.
    pub fn new(
        file: &Path,
        (line, column): (usize, usize),
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            file: file.to_path_buf(),
            line,
            column,
            key: key.into(),
            message: message.into(),
            hint: None,
        }
    }

    /// The same problem with a hint on what to do.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        write!(f, ": ")?;
        if !self.key.is_empty() {
            write!(f, "`{}`: ", self.key)?;
        }
        write!(f, "{}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// Every problem found in one file, in source order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl From<Diagnostic> for Diagnostics {
    fn from(d: Diagnostic) -> Self {
        Diagnostics(vec![d])
    }
}

impl Diagnostics {
    /// Sorts the problems by position (file-wide problems first), dropping exact
    /// duplicates.
    pub fn sort(&mut self) {
        self.0.sort_by(|a, b| {
            (a.line, a.column, &a.key, &a.message).cmp(&(b.line, b.column, &b.key, &b.message))
        });
        self.0.dedup();
    }

    /// Whether no problem was found.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many problems were found.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The problems, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.0.iter()
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.0 {
            writeln!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}
