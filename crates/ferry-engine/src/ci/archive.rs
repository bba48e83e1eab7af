//! Tar archives of workspace paths, for artifacts and caches.
//!
//! A pattern is a path or a glob relative to the workspace (`*` stays within one
//! directory, `**` crosses directories); a matching directory brings everything below
//! it. Archives keep relative paths, permissions and symlinks (not followed).

use globset::{GlobBuilder, GlobSetBuilder};
use std::collections::BTreeSet;
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

/// Why packing failed.
#[derive(Debug)]
pub(crate) enum PackError {
    /// A pattern is not a relative path or glob.
    BadPattern(String),
    /// Reading the workspace or writing the archive failed.
    Io(io::Error),
}

impl std::fmt::Display for PackError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PackError::BadPattern(m) => f.write_str(m),
            PackError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl From<io::Error> for PackError {
    fn from(e: io::Error) -> Self {
        PackError::Io(e)
    }
}

fn has_meta(s: &str) -> bool {
    s.contains(['*', '?', '[', '{'])
}

/// The workspace-relative paths (files and symlinks) the patterns select, sorted.
pub(crate) fn select(root: &Path, patterns: &[String]) -> Result<BTreeSet<PathBuf>, PackError> {
    let mut out = BTreeSet::new();
    for raw in patterns {
        let pat = raw.trim().trim_start_matches("./").trim_end_matches('/');
        let p = Path::new(pat);
        if pat.is_empty()
            || p.is_absolute()
            || p.components().any(|c| matches!(c, Component::ParentDir))
        {
            return Err(PackError::BadPattern(format!(
                "`{raw}` is not a path inside the workspace (use a relative path without `..`)"
            )));
        }
        if !has_meta(pat) {
            collect(root, p, &mut out, &mut |_| true)?;
            continue;
        }
        let glob = GlobBuilder::new(pat)
            .literal_separator(true)
            .build()
            .map_err(|e| PackError::BadPattern(format!("`{raw}`: {e}")))?;
        let set = GlobSetBuilder::new()
            .add(glob)
            .build()
            .map_err(|e| PackError::BadPattern(format!("`{raw}`: {e}")))?;
        // Walk only below the pattern's literal prefix.
        let base: PathBuf = p
            .components()
            .take_while(|c| !has_meta(&c.as_os_str().to_string_lossy()))
            .collect();
        collect(root, &base, &mut out, &mut |rel: &Path| {
            rel.ancestors()
                .any(|a| !a.as_os_str().is_empty() && set.is_match(a))
        })?;
    }
    Ok(out)
}

/// Adds files below `root/rel` (or `rel` itself) that `keep` accepts.
fn collect(
    root: &Path,
    rel: &Path,
    out: &mut BTreeSet<PathBuf>,
    keep: &mut dyn FnMut(&Path) -> bool,
) -> io::Result<()> {
    let full = root.join(rel);
    let meta = match std::fs::symlink_metadata(&full) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if meta.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(&full)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            collect(root, &rel.join(e.file_name()), out, keep)?;
        }
    } else if !rel.as_os_str().is_empty() && keep(rel) {
        out.insert(rel.to_path_buf());
    }
    Ok(())
}

/// Writes a tar of `files` (relative to `root`) to `w`; returns `w`.
pub(crate) fn pack<W: Write>(root: &Path, files: &BTreeSet<PathBuf>, w: W) -> io::Result<W> {
    use std::os::unix::fs::MetadataExt;
    let mut b = tar::Builder::new(w);
    for rel in files {
        let full = root.join(rel);
        let meta = std::fs::symlink_metadata(&full)?;
        // Same content and modification time → same bytes → one blob: no owner,
        // access time or exact mode bits in the header (executable or not is kept);
        // the modification time is, since build tools compare it.
        let mut h = tar::Header::new_gnu();
        h.set_metadata_in_mode(&meta, tar::HeaderMode::Deterministic);
        h.set_mtime(u64::try_from(meta.mtime()).unwrap_or(0));
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&full)?;
            b.append_link(&mut h, rel, target)?;
        } else {
            let f = std::fs::File::open(&full)?;
            b.append_data(&mut h, rel, f)?;
        }
    }
    b.into_inner()
}

/// Unpacks a tar into `dir`, overwriting files that exist.
pub(crate) fn unpack<R: Read>(r: R, dir: &Path) -> io::Result<()> {
    let mut a = tar::Archive::new(r);
    a.set_preserve_permissions(true);
    a.set_preserve_mtime(true);
    a.set_overwrite(true);
    a.unpack(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selects_files_dirs_and_globs() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join("dist/sub")).unwrap();
        std::fs::write(r.join("dist/a.txt"), "a").unwrap();
        std::fs::write(r.join("dist/sub/b.bin"), "b").unwrap();
        std::fs::write(r.join("top.txt"), "t").unwrap();
        std::fs::write(r.join("other.log"), "o").unwrap();
        let got = select(r, &["dist".into()]).unwrap();
        assert_eq!(got.len(), 2);
        let got = select(r, &["*.txt".into()]).unwrap();
        assert_eq!(
            got.into_iter().collect::<Vec<_>>(),
            vec![PathBuf::from("top.txt")]
        );
        let got = select(r, &["dist/**/*.bin".into(), "missing".into()]).unwrap();
        assert_eq!(
            got.into_iter().collect::<Vec<_>>(),
            vec![PathBuf::from("dist/sub/b.bin")]
        );
        assert!(select(r, &["../etc".into()]).is_err());
    }

    #[test]
    fn pack_then_unpack_round_trips() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("src");
        std::fs::create_dir_all(src.join("x")).unwrap();
        std::fs::write(src.join("x/f"), "hello").unwrap();
        std::fs::write(src.join("x/run"), "#!/bin/sh").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(src.join("x/run"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        std::os::unix::fs::symlink("f", src.join("x/link")).unwrap();
        let files = select(&src, &["x".into()]).unwrap();
        let bytes = pack(&src, &files, Vec::new()).unwrap();
        assert_eq!(
            bytes,
            pack(&src, &files, Vec::new()).unwrap(),
            "packing is deterministic"
        );
        let dst = d.path().join("dst");
        std::fs::create_dir_all(&dst).unwrap();
        unpack(&bytes[..], &dst).unwrap();
        assert_eq!(std::fs::read_to_string(dst.join("x/f")).unwrap(), "hello");
        assert_eq!(
            std::fs::read_link(dst.join("x/link")).unwrap(),
            PathBuf::from("f")
        );
        let mode = std::fs::metadata(dst.join("x/run"))
            .unwrap()
            .permissions()
            .mode();
        assert!(mode & 0o111 != 0, "executable bit kept: {mode:o}");
    }
}
