//! `ferry hook install`: a post-receive hook that makes a plain `git push` to a bare
//! repository on the server's host start a run.
//!
//! The hook reads each pushed ref from stdin and POSTs
//! `{"ref": "refs/heads/main", "sha": "<new commit>"}` to
//! `<server>/api/v1/projects/<project>/runs` with a bearer token read from a file
//! (written by [`write_hook_token`] with mode 0600 next to the hook), never from the
//! script itself. Deleted refs are ignored. A failed request prints a warning to the
//! pusher and never rejects the push (post-receive cannot).

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The token file's default name, in the repository's `hooks/` directory.
pub const HOOK_TOKEN_FILE: &str = "ferry-token";

/// Quotes `s` for bash, in single quotes.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r#"'\''"#))
}

/// The post-receive hook script (bash, needs `curl`). `token_file` is the token's
/// file: a relative path is taken relative to the hook's own directory.
pub fn post_receive_hook(server_url: &str, project: &str, token_file: &Path) -> String {
    let url = format!(
        "{}/api/v1/projects/{}/runs",
        server_url.trim_end_matches('/'),
        project
    );
    format!(
        r#"#!/usr/bin/env bash
# Installed by `ferry hook install`: each pushed branch or tag starts a Ferry run of
# project {project_comment}. The API token is read from the file below (mode 0600).
set -u
url={url}
token_file={token_file}
case "$token_file" in /*) ;; *) token_file="$(cd "$(dirname "$0")" && pwd)/$token_file" ;; esac
if ! token="$(cat "$token_file" 2>/dev/null)"; then
    echo "ferry: cannot read the API token from $token_file; no run started" >&2
    exit 0
fi
token="${{token//[$'\t\r\n ']/}}"
zero=0000000000000000000000000000000000000000
while read -r old new ref; do
    case "$new" in "$zero"|*[!0-9a-f]*|"") continue ;; esac
    ref_json="${{ref//\"/\\\"}}"
    body="{{\"ref\":\"$ref_json\",\"sha\":\"$new\"}}"
    if ! curl -fsS --max-time 30 -o /dev/null -X POST \
        -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
        --data "$body" "$url"; then
        echo "ferry: could not start a run for $ref (is the server at $url up?)" >&2
    fi
done
exit 0
"#,
        project_comment = project.replace('\n', " "),
        url = sh_quote(&url),
        token_file = sh_quote(&token_file.to_string_lossy()),
    )
}

/// Writes `script` as `<bare_repo>/hooks/post-receive`, mode 0755; returns its path.
pub fn install_hook(bare_repo: &Path, script: &str) -> std::io::Result<PathBuf> {
    let hooks = hooks_dir(bare_repo)?;
    let path = hooks.join("post-receive");
    let tmp = hooks.join(".post-receive.ferry-tmp");
    std::fs::write(&tmp, script)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))?;
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

/// Writes the API token to `<bare_repo>/hooks/ferry-token` with mode 0600; returns its
/// path (pass [`HOOK_TOKEN_FILE`] to [`post_receive_hook`]).
pub fn write_hook_token(bare_repo: &Path, token: &str) -> std::io::Result<PathBuf> {
    let hooks = hooks_dir(bare_repo)?;
    let path = hooks.join(HOOK_TOKEN_FILE);
    let _ = std::fs::remove_file(&path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    f.write_all(token.trim().as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    Ok(path)
}

fn hooks_dir(bare_repo: &Path) -> std::io::Result<PathBuf> {
    if !bare_repo.join("HEAD").is_file() || !bare_repo.join("objects").is_dir() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!(
                "{} is not a bare git repository (no HEAD and objects/)",
                bare_repo.display()
            ),
        ));
    }
    let hooks = bare_repo.join("hooks");
    std::fs::create_dir_all(&hooks)?;
    Ok(hooks)
}
