//! Where Ferry keeps its data.

use std::path::PathBuf;

/// The data directory: `--data-dir` / `FERRY_DATA_DIR` when given, else
/// `$XDG_DATA_HOME/ferry`, else `~/.local/share/ferry`.
pub fn data_dir(explicit: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(dir) = explicit {
        return Ok(dir);
    }
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(xdg).join("ferry"));
    }
    match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".local/share/ferry")),
        None => anyhow::bail!(
            "cannot choose a data directory: neither HOME nor XDG_DATA_HOME is set; pass --data-dir DIR or set FERRY_DATA_DIR"
        ),
    }
}
