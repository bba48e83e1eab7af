//! The POSIX `sh` scripts the ssh target runs on hosts.
//!
//! Layout on a host, under the target's remote directory (default `~/.ferry`):
//! - `releases/<hex digest>/`: an unpacked tarball, one per digest, marked complete by
//!   `.ferry-complete` once unpacked; the marker's modification time is the release's
//!   last use (every deploy touches it), which [`prune`] goes by;
//! - `instances/<name>/`: one per instance: `meta` (service, environment, release,
//!   digest, mode, port), `env` (mode 0600), and for a supervised process `run` (the
//!   supervisor), `pid`, `output.log` and, once that passed its size limit,
//!   `output.log.1`.
//!
//! Every value from outside (names, commands, env values) enters a script through
//! [`sh_quote`] or a here-document with a random delimiter.

use super::client::sh_quote;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// How an instance runs on its host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A systemd unit `ferry-<name>.service` (root on a host whose PID 1 is systemd).
    Systemd,
    /// A background process in its own session, under a small `sh` supervisor.
    Process,
    /// A container of the host's Docker engine.
    Docker,
}

impl Mode {
    /// The name written in `meta` and in instance handles.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Systemd => "systemd",
            Mode::Process => "process",
            Mode::Docker => "docker",
        }
    }

    /// The mode named `s`.
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "systemd" => Some(Mode::Systemd),
            "process" => Some(Mode::Process),
            "docker" => Some(Mode::Docker),
            _ => None,
        }
    }
}

/// The shell prologue setting `F` to the remote directory: `~/…` is under `$HOME`.
pub fn prologue(remote_dir: &str) -> String {
    match remote_dir.strip_prefix("~/") {
        Some(rest) => format!("F=\"$HOME\"/{}\n", sh_quote(rest)),
        None => format!("F={}\n", sh_quote(remote_dir)),
    }
}

/// Prints `systemd` when instances can run as system units, else `process`.
pub const DETECT_MODE: &str = r#"
if [ "$(id -u)" = 0 ] && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  case "$(systemctl is-system-running 2>/dev/null)" in
    running|degraded|starting) echo systemd; exit 0 ;;
  esac
fi
echo process
"#;

/// Exits 0 when the release with `hex` digest is unpacked on the host, and then marks
/// it used now (the marker's time orders releases for [`prune`]).
pub fn release_present(remote_dir: &str, hex: &str) -> String {
    format!(
        "{}M=\"$F/releases/\"{}/.ferry-complete\n[ -f \"$M\" ] && touch \"$M\"\n",
        prologue(remote_dir),
        sh_quote(hex)
    )
}

/// Removes the releases on the host that no instance there uses, except the `keep`
/// most recently used ones, in one go; prints `removed=<hex>` for each one removed.
///
/// A release is in use when the `meta` of an instance directory names its digest:
/// live, warm and still-draining instances of every service on the host all have
/// one (a stop removes the directory). When a tarball instance's `meta` has no
/// digest (started by a Ferry that did not record it) nothing is removed, since what
/// it runs cannot be told. A release is renamed away before it is deleted, so that
/// a deploy checking for it at the same time uploads it again rather than finding
/// half of it. Unpacks cut short (`<hex>.part.<pid>`) older than a day go too.
pub fn prune(remote_dir: &str, keep: usize) -> String {
    format!(
        r#"{}cd "$F/releases" 2>/dev/null || exit 0
used=
for m in "$F"/instances/*/meta; do
  [ -f "$m" ] || continue
  d=$(sed -n 's/^digest=//p' "$m")
  if [ -z "$d" ]; then
    case "$(sed -n 's/^mode=//p' "$m")" in
    docker) continue ;;
    *) echo "unknown=${{m%/meta}}"; exit 0 ;;
    esac
  fi
  used="$used $d"
done
rm -rf ./.trash.*
find . ! -name . -prune -name '*.part.*' -mtime +0 -exec rm -rf {{}} + 2>/dev/null
n=0
for f in $(ls -t -- */.ferry-complete 2>/dev/null); do
  r=${{f%/.ferry-complete}}
  case "$r" in ''|*[!0-9a-f]*) continue ;; esac
  case " $used " in *" $r "*) echo "in_use=$r"; continue ;; esac
  n=$((n + 1))
  if [ "$n" -le {keep} ]; then echo "kept=$r"; continue; fi
  mv -f -- "$r" ".trash.$r.$$" && rm -rf -- ".trash.$r.$$" && echo "removed=$r"
done
exit 0
"#,
        prologue(remote_dir),
    )
}

/// The remote command line unpacking a tar from stdin as release `hex`; it goes on
/// the ssh command line (stdin carries the tar), so it holds no secrets. Unpacks into
/// a scratch directory first so that a broken upload never looks complete.
pub fn unpack(remote_dir: &str, hex: &str, tar_flags: &str) -> String {
    let script = format!(
        "{}R=\"$F/releases/\"{hex}; T=\"$R.part.$$\"; rm -rf \"$T\" && mkdir -p \"$T\" && tar -x{tar_flags} -f - -C \"$T\" && touch \"$T/.ferry-complete\" || {{ rm -rf \"$T\"; exit 1; }}; if [ -f \"$R/.ferry-complete\" ]; then rm -rf \"$T\"; else rm -rf \"$R\" && mv \"$T\" \"$R\"; fi",
        prologue(remote_dir),
        hex = sh_quote(hex)
    );
    format!("sh -c {}", sh_quote(&script))
}

/// A here-document writing `body` to `path` (a shell word), with a delimiter that
/// cannot occur in the body.
fn heredoc(path: &str, body: &str) -> String {
    let mut n = 0u32;
    let mut delim = "FERRY_EOF".to_string();
    while body.lines().any(|l| l == delim) {
        n += 1;
        delim = format!("FERRY_EOF_{n}");
    }
    let nl = if body.ends_with('\n') || body.is_empty() {
        ""
    } else {
        "\n"
    };
    format!("cat > {path} <<'{delim}'\n{body}{nl}{delim}\n")
}

/// The env file for `sh` (`.` with `set -a`): `KEY='value'` lines.
pub fn env_sh(env: &BTreeMap<String, String>) -> String {
    env.iter().fold(String::new(), |mut s, (k, v)| {
        let _ = writeln!(s, "{k}={}", sh_quote(v));
        s
    })
}

/// The env file for systemd's `EnvironmentFile=`: `KEY="value"` lines with
/// backslash escapes.
pub fn env_systemd(env: &BTreeMap<String, String>) -> String {
    env.iter().fold(String::new(), |mut s, (k, v)| {
        let v = v
            .replace('\\', r"\\")
            .replace('"', "\\\"")
            .replace('\n', r"\n");
        let _ = writeln!(s, "{k}=\"{v}\"");
        s
    })
}

/// Whether `k` can be an environment variable name for `sh`.
pub fn valid_env_name(k: &str) -> bool {
    let mut chars = k.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// How often (in seconds) a supervisor checks the size of its instance's output log.
pub const LOG_CHECK_SECS: u32 = 2;

/// The supervisor of a [`Mode::Process`] instance, run as `sh <dir>/run` in the
/// release's directory and in a session of its own, its output appended to
/// `output.log`. It restarts the command when it fails (with a growing pause, giving
/// up after 10 quick failures in a row), and on SIGTERM passes it on and waits for
/// the command to exit, so that the stop's grace is the command's.
///
/// A watcher beside it keeps the log within `log_max_bytes`: every
/// [`LOG_CHECK_SECS`] seconds, once the log is larger, it copies it to
/// `output.log.1` (replacing the previous one) and empties it. The output is open for
/// appending, so the command's writes go on at the new end of the emptied file; only
/// what is written between the copy and the emptying is lost. Nothing sits between
/// the command and its log, so the command never sees a broken pipe.
pub fn supervisor(command: &str, log_max_bytes: u64) -> String {
    format!(
        r#"D=${{0%/run}}
L="$D/output.log"
stop=0
c=
trap 'stop=1; [ -n "$c" ] && kill -TERM "$c" 2>/dev/null' TERM INT HUP
echo $$ > "$D/pid.tmp" && mv -f "$D/pid.tmp" "$D/pid"
set -a; . "$D/env"; set +a
s=$$
(
  trap - TERM INT HUP
  while kill -0 "$s" 2>/dev/null; do
    b=$(wc -c < "$L" 2>/dev/null) && [ "$((b))" -gt {max} ] && cp "$L" "$L.1.tmp" && mv -f "$L.1.tmp" "$L.1" && : > "$L"
    sleep {every}
  done
) </dev/null >/dev/null 2>&1 &
w=$!
trap 'kill "$w" 2>/dev/null' EXIT
n=0
while [ "$stop" = 0 ]; do
  s=$(date +%s)
  sh -c {cmd} </dev/null &
  c=$!
  wait "$c"; code=$?
  while kill -0 "$c" 2>/dev/null; do wait "$c"; code=$?; done
  c=
  [ "$stop" = 1 ] && exit 0
  [ "$code" = 0 ] && exit 0
  [ $(( $(date +%s) - s )) -ge 30 ] && n=0
  n=$((n + 1))
  if [ "$n" -gt 10 ]; then echo "ferry: the command failed 10 times in a row (last exit status $code); giving up" >&2; exit "$code"; fi
  echo "ferry: the command exited with status $code; restarting in $n s" >&2
  sleep "$n"
done
"#,
        cmd = sh_quote(command),
        max = log_max_bytes,
        every = LOG_CHECK_SECS,
    )
}

/// What [`start`] needs besides the mode.
pub struct StartScript<'a> {
    /// The remote directory.
    pub remote_dir: &'a str,
    /// The instance name.
    pub name: &'a str,
    /// `meta` lines (`key=value`).
    pub meta: &'a [(&'a str, String)],
    /// The environment, `PORT` included.
    pub env: &'a BTreeMap<String, String>,
    /// Port candidates; the first one free on the host is used.
    pub ports: &'a [u16],
    /// How long a leftover of the same name gets to stop.
    pub grace_tenths: u64,
    /// The size past which a supervised process's `output.log` is rotated.
    pub log_max_bytes: u64,
}

/// The part of every start script before the mode-specific launch: removes a
/// leftover of the same name, creates the instance directory with its `meta` and
/// `env`, and with `pick_port` picks the port (printed as `port=N`, in `$P`).
fn start_prologue(s: &StartScript<'_>, env_file: &str, pick_port: bool) -> String {
    let mut out = prologue(s.remote_dir);
    out.push_str(&stop_body(s.name, s.grace_tenths));
    let _ = writeln!(out, "D=\"$F/instances/\"{}", sh_quote(s.name));
    if pick_port {
        // A port is free when no socket in this network namespace uses it: the local
        // address column of /proc/net/tcp{,6} ends in `:PORT` in hex.
        let candidates: Vec<String> = s.ports.iter().map(u16::to_string).collect();
        let _ = write!(
            out,
            r#"P=
for p in {}; do
  h=$(printf '%04X' "$p")
  if ! cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | grep -qi ":$h "; then P=$p; break; fi
done
[ -n "$P" ] || {{ echo "no free port among {} candidates" >&2; exit 3; }}
echo "port=$P"
"#,
            candidates.join(" "),
            candidates.len()
        );
    }
    out.push_str("umask 077\nmkdir -p \"$D\" || exit 3\n");
    let mut meta = String::new();
    for (k, v) in s.meta {
        let _ = writeln!(meta, "{k}={v}");
    }
    out.push_str(&heredoc("\"$D/meta\"", &meta));
    if pick_port {
        out.push_str("echo \"port=$P\" >> \"$D/meta\"\n");
    }
    out.push_str(&heredoc("\"$D/env\"", env_file));
    out
}

/// Starts a supervised background process from release directory `release_hex`;
/// prints `port=N` and `pid=N`.
pub fn start_process(s: &StartScript<'_>, release_hex: &str, command: &str) -> String {
    let mut env = s.env.clone();
    env.remove("PORT");
    let mut out = start_prologue(s, &env_sh(&env), true);
    let _ = writeln!(out, "echo \"PORT='$P'\" >> \"$D/env\"");
    out.push_str(&heredoc(
        "\"$D/run\"",
        &supervisor(command, s.log_max_bytes),
    ));
    let _ = write!(
        out,
        r#"R="$F/releases/"{hex}
[ -d "$R" ] || {{ echo "the release directory $R is missing" >&2; exit 3; }}
cd "$R" || exit 3
touch .ferry-complete
rm -f "$D/pid"
setsid nohup sh "$D/run" >>"$D/output.log" 2>&1 </dev/null &
i=0
while [ ! -s "$D/pid" ] && [ "$i" -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
[ -s "$D/pid" ] || {{ echo "the instance did not start; its log:" >&2; tail -n 20 "$D/output.log" >&2; exit 3; }}
echo "pid=$(cat "$D/pid")"
"#,
        hex = sh_quote(release_hex)
    );
    out
}

/// Escapes a command for a systemd `ExecStart=` double-quoted argument.
fn systemd_arg(s: &str) -> String {
    s.replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('%', "%%")
        .replace('$', "$$")
}

/// Starts `ferry-<name>.service`; prints `port=N`. Its output goes to the journal
/// (`StandardOutput=journal`, stderr following), which journald rotates by its own
/// limits (`SystemMaxUse=` and friends): `journalctl -u ferry-<name>.service`.
pub fn start_systemd(s: &StartScript<'_>, release_hex: &str, command: &str) -> String {
    let mut env = s.env.clone();
    env.remove("PORT");
    let mut out = start_prologue(s, &env_systemd(&env), true);
    let _ = writeln!(out, "echo \"PORT=$P\" >> \"$D/env\"");
    let unit = format!("ferry-{}.service", s.name);
    let _ = write!(
        out,
        r#"R="$F/releases/"{hex}
[ -d "$R" ] || {{ echo "the release directory $R is missing" >&2; exit 3; }}
touch "$R/.ferry-complete"
U={unit}
printf '%s\n' '[Unit]' {desc} '' '[Service]' "WorkingDirectory=$R" "EnvironmentFile=$D/env" {exec} 'Restart=on-failure' 'RestartSec=1' 'KillMode=control-group' 'StandardOutput=journal' 'StandardError=inherit' '' '[Install]' 'WantedBy=multi-user.target' > "/etc/systemd/system/$U" || exit 3
systemctl daemon-reload && systemctl restart "$U" || {{ systemctl status "$U" >&2; exit 3; }}
"#,
        hex = sh_quote(release_hex),
        unit = sh_quote(&unit),
        desc = sh_quote(&format!("Description=Ferry instance {}", s.name)),
        exec = sh_quote(&format!(
            "ExecStart=/bin/sh -c \"{}\"",
            systemd_arg(command)
        )),
    );
    out
}

/// Runs `image` in the host's Docker engine, its container port `port` published on
/// a host port Docker picks (so that it cannot collide with a port in use there);
/// prints `port=N` (the host port) and `container=ID`.
pub fn start_docker(
    s: &StartScript<'_>,
    image: &str,
    command: Option<&str>,
    port: u16,
    labels: &[(&str, String)],
) -> String {
    let mut env = s.env.clone();
    env.remove("PORT");
    let mut out = String::from(
        "command -v docker >/dev/null 2>&1 || { echo \"the `docker` command is not installed on this host\" >&2; exit 3; }\n",
    );
    out.push_str(&start_prologue(s, &env_sh(&env), false));
    let _ = writeln!(out, "echo \"PORT='{port}'\" >> \"$D/env\"");
    let cname = sh_quote(&format!("ferry-{}", s.name));
    let mut run = String::from("docker run -d --restart unless-stopped");
    let _ = write!(run, " --name {cname}");
    for (k, v) in labels {
        let _ = write!(run, " --label {}", sh_quote(&format!("{k}={v}")));
    }
    for k in env.keys() {
        let _ = write!(run, " -e {k}");
    }
    let _ = write!(run, " -e PORT -p {port}");
    if command.is_some() {
        run.push_str(" --entrypoint /bin/sh");
    }
    let _ = write!(run, " {}", sh_quote(image));
    if let Some(c) = command {
        let _ = write!(run, " -c {}", sh_quote(c));
    }
    let _ = write!(
        out,
        r#"set -a; . "$D/env"; set +a
id=$({run}) || {{ docker rm -f {cname} >/dev/null 2>&1; exit 3; }}
hp=$(docker port {cname} {port}/tcp | head -n 1)
P=${{hp##*:}}
[ -n "$P" ] || {{ echo "Docker published no port for container port {port}" >&2; docker rm -f {cname} >/dev/null 2>&1; exit 3; }}
echo "port=$P" | tee -a "$D/meta"
echo "container=$id"
"#
    );
    out
}

/// The body stopping instance `name` whatever its mode, then removing its directory;
/// expects `F`. Succeeds when there is nothing to stop.
fn stop_body(name: &str, grace_tenths: u64) -> String {
    format!(
        r#"N={name}
D="$F/instances/$N"
if [ -d "$D" ]; then
  case "$(sed -n 's/^mode=//p' "$D/meta" 2>/dev/null)" in
  systemd)
    U="ferry-$N.service"
    systemctl kill -s TERM "$U" 2>/dev/null
    i=0; while systemctl is-active --quiet "$U" && [ "$i" -lt {g} ]; do sleep 0.1; i=$((i + 1)); done
    systemctl kill -s KILL "$U" 2>/dev/null
    systemctl stop "$U" 2>/dev/null
    rm -f "/etc/systemd/system/$U"
    systemctl daemon-reload 2>/dev/null
    systemctl reset-failed "$U" 2>/dev/null
    ;;
  docker)
    docker stop -t {gs} "ferry-$N" >/dev/null 2>&1
    docker rm -f "ferry-$N" >/dev/null 2>&1
    ;;
  *)
    p=$(cat "$D/pid" 2>/dev/null)
    if [ -n "$p" ] && tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null | grep -qF "$D/run"; then
      kill -TERM -"$p" 2>/dev/null
      i=0
      while tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null | grep -qF "$D/run" && [ "$i" -lt {g} ]; do sleep 0.1; i=$((i + 1)); done
      kill -KILL -"$p" 2>/dev/null
    fi
    ;;
  esac
  rm -rf "$D"
fi
"#,
        name = sh_quote(name),
        g = grace_tenths,
        gs = grace_tenths.div_ceil(10),
    )
}

/// Stops instance `name` and removes its directory.
pub fn stop(remote_dir: &str, name: &str, grace_tenths: u64) -> String {
    format!("{}{}", prologue(remote_dir), stop_body(name, grace_tenths))
}

/// Exits 0 when instance `name` runs.
pub fn alive(remote_dir: &str, name: &str) -> String {
    format!(
        r#"{}N={}
D="$F/instances/$N"
case "$(sed -n 's/^mode=//p' "$D/meta" 2>/dev/null)" in
systemd) systemctl is-active --quiet "ferry-$N.service" ;;
docker) [ "$(docker inspect -f '{{{{.State.Running}}}}' "ferry-$N" 2>/dev/null)" = true ] ;;
process)
  p=$(cat "$D/pid" 2>/dev/null) || exit 1
  tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null | grep -qF "$D/run" ;;
*) exit 1 ;;
esac
"#,
        prologue(remote_dir),
        sh_quote(name)
    )
}

/// Prints the names of instances of `service` in `environment` on the host.
pub fn list(remote_dir: &str, service: &str, environment: &str) -> String {
    format!(
        r#"{}S={}
E={}
for m in "$F"/instances/*/meta; do
  [ -f "$m" ] || continue
  if grep -qxF "service=$S" "$m" && grep -qxF "environment=$E" "$m"; then
    d=${{m%/meta}}
    echo "${{d##*/}}"
  fi
done
"#,
        prologue(remote_dir),
        sh_quote(service),
        sh_quote(environment)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_names_follow_sh_rules() {
        assert!(valid_env_name("DATABASE_URL"));
        assert!(valid_env_name("_x1"));
        assert!(!valid_env_name("1X"));
        assert!(!valid_env_name("A-B"));
        assert!(!valid_env_name(""));
    }

    #[test]
    fn heredoc_delimiter_avoids_the_body() {
        let h = heredoc("f", "FERRY_EOF\nx");
        assert!(h.contains("<<'FERRY_EOF_1'"), "{h}");
    }

    /// `sh -n`: the script parses.
    fn parses(script: &str) {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("script.sh");
        std::fs::write(&f, script).expect("write the script");
        let out = std::process::Command::new("sh")
            .arg("-n")
            .arg(&f)
            .output()
            .expect("sh runs");
        assert!(
            out.status.success(),
            "{}\n---\n{script}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn every_script_parses_with_awkward_input() {
        let env = BTreeMap::from([
            (
                "A".to_string(),
                "it's \"x\" $HOME `id`\nFERRY_EOF".to_string(),
            ),
            ("PORT".to_string(), "1".to_string()),
        ]);
        let meta = [
            ("service", "web".to_string()),
            ("mode", "process".to_string()),
        ];
        let s = StartScript {
            remote_dir: "~/.ferry dir",
            name: "web-staging-v1-0",
            meta: &meta,
            env: &env,
            ports: &[20000, 20001],
            grace_tenths: 50,
            log_max_bytes: 1 << 20,
        };
        let cmd = "echo \"$PORT\" 'q' && exec ./server --x=100%";
        parses(&start_process(&s, "abc", cmd));
        parses(&start_systemd(&s, "abc", cmd));
        parses(&start_docker(
            &s,
            "img:1",
            Some(cmd),
            8080,
            &[("ferry.service", "web".into())],
        ));
        parses(&start_docker(&s, "img:1", None, 8080, &[]));
        parses(&supervisor(cmd, 4096));
        parses(&prune("~/.ferry", 3));
        parses(&stop("/srv/ferry", "n", 10));
        parses(&alive("~/.ferry", "n"));
        parses(&list("~/.ferry", "web", "staging"));
        parses(&release_present("~/.ferry", "abc"));
        parses(DETECT_MODE);
    }

    #[test]
    fn systemd_arguments_escape_expansions() {
        assert_eq!(
            systemd_arg(r#"echo "$PORT" 100%"#),
            r#"echo \"$$PORT\" 100%%"#
        );
    }
}
