//! `hashFiles(…)`: one digest over the files matching some globs, for cache keys.

use globset::{GlobBuilder, GlobSetBuilder};
use sha2::{Digest, Sha256};
use std::path::Path;

/// Compiles a glob the way every glob of `ferry.yml` is read: `*` and `?` stay
/// within one path segment, `**` crosses them.
pub(crate) fn glob(pattern: &str) -> Result<globset::Glob, globset::Error> {
    GlobBuilder::new(pattern).literal_separator(true).build()
}

/// SHA-256 (hex) over the contents of every file under `root` matching one of
/// `patterns` (relative, `/`-separated, `*` does not cross `/`), in sorted path order;
/// "" when nothing matches. `.git` is skipped.
pub(crate) fn hash_files(root: &Path, patterns: &[String]) -> Result<String, String> {
    let mut set = GlobSetBuilder::new();
    for p in patterns {
        let glob = glob(p.trim_start_matches("./"))
            .map_err(|e| format!("invalid glob \"{p}\": {}", e.kind()))?;
        set.add(glob);
    }
    let set = set.build().map_err(|e| e.to_string())?;
    let mut files = Vec::new();
    collect(root, "", &mut files).map_err(|e| format!("cannot list {}: {e}", root.display()))?;
    files.retain(|rel| set.is_match(rel));
    files.sort();
    if files.is_empty() {
        return Ok(String::new());
    }
    let mut all = Sha256::new();
    for rel in &files {
        let bytes = std::fs::read(root.join(rel)).map_err(|e| format!("cannot read {rel}: {e}"))?;
        all.update(Sha256::digest(&bytes));
    }
    Ok(hex::encode(all.finalize()))
}

fn collect(dir: &Path, prefix: &str, out: &mut Vec<String>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let rel = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        let kind = entry.file_type()?;
        // A symlink to a directory is neither walked (no loops) nor read as a file.
        if kind.is_symlink() && entry.path().is_dir() {
            continue;
        }
        if kind.is_dir() {
            if name != ".git" {
                collect(&entry.path(), &rel, out)?;
            }
        } else {
            out.push(rel);
        }
    }
    Ok(())
}
