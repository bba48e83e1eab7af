//! `ServeOptions`: the server's settings, merged from flags, `FERRY_*` environment
//! variables, the config file and the defaults — in that order of precedence.
//!
//! clap already folds a flag and its variable into one `Option` (the flag wins); this
//! module lays the config file under that and the defaults under everything, so every
//! setting has exactly one place where its value is decided.

use crate::cli::{Interval, ServeArgs, parse_interval};
use crate::cmd::proxy::edge::{EdgeListen, TlsListen};
use crate::exit::{Failure, bad_input};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The default address: loopback only, port 7878.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7878";
/// The edge proxy's default address: loopback only, port 8080.
pub const DEFAULT_PROXY_LISTEN: &str = "127.0.0.1:8080";
/// The config file looked for in the data directory when `--config` is not given.
pub const CONFIG_FILE: &str = "ferry-server.yml";
/// Jobs the built-in executor runs at once unless told otherwise.
pub const DEFAULT_EXECUTOR_JOBS: usize = 2;
/// A job's lease without heartbeats; agents renew every 5 s, so a dead agent is
/// noticed within this plus the expiry loop's period — well under 30 s.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(15);

/// Every setting of `ferry serve`, decided.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeOptions {
    /// Where to listen.
    pub listen: SocketAddr,
    /// HTTPS: the certificate chain and key files; None: plain HTTP.
    pub tls: Option<ServerTls>,
    /// The data directory.
    pub data_dir: PathBuf,
    /// PostgreSQL URL; None: SQLite in the data directory.
    pub database_url: Option<String>,
    /// Built-in executor slots; 0: agents only.
    pub executor_jobs: usize,
    /// Built-in executor labels.
    pub executor_labels: Vec<String>,
    /// Repository polling interval; None: no polling.
    pub poll_interval: Option<Duration>,
    /// `/metrics` without a token.
    pub metrics_public: bool,
    /// Lease length for claimed jobs.
    pub lease: Duration,
    /// The log filter when `RUST_LOG` is unset.
    pub log_level: String,
    /// The config file that was read, if any.
    pub config_file: Option<PathBuf>,
    /// The edge proxy's listeners; None: `--no-proxy`.
    pub proxy: Option<EdgeListen>,
    /// The file access lines are appended to; None: the server's log.
    pub access_log: Option<PathBuf>,
}

/// The API's certificate chain and private key, PEM files.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerTls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The config file's shape: the flags' names, every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileOptions {
    listen: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    executor_jobs: Option<usize>,
    executor_labels: Option<Vec<String>>,
    poll_interval: Option<String>,
    metrics_public: Option<bool>,
    lease: Option<String>,
    log_level: Option<String>,
    proxy_listen: Option<String>,
    no_proxy: Option<bool>,
    proxy_tls_listen: Option<String>,
    proxy_tls_cert: Option<PathBuf>,
    proxy_tls_key: Option<PathBuf>,
    access_log: Option<PathBuf>,
}

impl ServeOptions {
    /// Merges `args` (flags and variables), the config file and the defaults.
    /// `data_dir_flag` is the global `--data-dir` / `FERRY_DATA_DIR`.
    pub fn resolve(args: &ServeArgs, data_dir_flag: Option<PathBuf>) -> Result<Self, Failure> {
        // The data directory decides where the default config file is, so it comes
        // from the flag, the variable or the default first; an explicit config file
        // may still move it.
        let (file, config_file) = match &args.config {
            Some(path) => (read_file(path)?, Some(path.clone())),
            None => {
                let dir = crate::paths::data_dir(data_dir_flag.clone())?;
                let path = dir.join(CONFIG_FILE);
                if path.is_file() {
                    (read_file(&path)?, Some(path))
                } else {
                    (FileOptions::default(), None)
                }
            }
        };
        let where_ = |key: &str| match &config_file {
            Some(p) => format!("{}: `{key}`", p.display()),
            None => format!("`{key}`"),
        };

        let proxy = if args.no_proxy.or(file.no_proxy).unwrap_or(false) {
            None
        } else {
            Some(proxy_listen(args, &file, config_file.as_deref())?)
        };
        let tls_cert = args.tls_cert.clone().or_else(|| {
            file.tls_cert
                .clone()
                .map(|p| relative_to_file(p, config_file.as_deref()))
        });
        let tls_key = args.tls_key.clone().or_else(|| {
            file.tls_key
                .clone()
                .map(|p| relative_to_file(p, config_file.as_deref()))
        });
        let tls = match (tls_cert, tls_key) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some(ServerTls { cert, key }),
            (Some(_), None) => {
                return Err(bad_input(format!(
                    "{} needs {} too: the certificate's private key (PEM)",
                    where_tls(args.tls_cert.is_some(), "cert", config_file.as_deref()),
                    where_tls(args.tls_cert.is_some(), "key", config_file.as_deref()),
                )));
            }
            (None, Some(_)) => {
                return Err(bad_input(format!(
                    "{} needs {} too: the certificate chain (PEM, leaf first)",
                    where_tls(args.tls_key.is_some(), "key", config_file.as_deref()),
                    where_tls(args.tls_key.is_some(), "cert", config_file.as_deref()),
                )));
            }
        };
        let access_log = args.access_log.clone().or_else(|| {
            file.access_log
                .clone()
                .map(|p| relative_to_file(p, config_file.as_deref()))
        });
        let data_dir = match data_dir_flag {
            Some(d) => d,
            None => match file.data_dir {
                Some(d) => relative_to_file(d, config_file.as_deref()),
                None => crate::paths::data_dir(None)?,
            },
        };
        let listen_text = args
            .listen
            .clone()
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.to_string());
        let listen = parse_listen(&listen_text).map_err(|e| {
            bad_input(format!(
                "{}: {e}",
                if args.listen.is_some() {
                    "--listen".to_string()
                } else {
                    where_("listen")
                }
            ))
        })?;
        let poll_interval = match args.poll_interval {
            Some(Interval(d)) => d,
            None => match file.poll_interval {
                Some(text) => {
                    parse_interval(&text)
                        .map_err(|e| bad_input(format!("{}: {e}", where_("poll-interval"))))?
                        .0
                }
                None => None,
            },
        };
        let lease = match args.lease {
            Some(d) => d,
            None => match file.lease {
                Some(text) => crate::cli::humantime_duration(&text)
                    .map_err(|e| bad_input(format!("{}: {e}", where_("lease"))))?,
                None => DEFAULT_LEASE,
            },
        };
        if lease < Duration::from_secs(2) {
            return Err(bad_input(format!(
                "the lease must be at least 2s (agents renew it every 5s or a third of it); got {}",
                humantime::format_duration(lease)
            )));
        }
        let database_url = args.database_url.clone().or(file.database_url);
        if let Some(url) = &database_url
            && !(url.starts_with("postgres://")
                || url.starts_with("postgresql://")
                || url.starts_with("sqlite://"))
        {
            return Err(bad_input(format!(
                "the database URL must start with postgres:// (or sqlite:// for a file elsewhere); got `{url}`"
            )));
        }
        Ok(ServeOptions {
            listen,
            tls,
            data_dir,
            database_url,
            executor_jobs: args
                .executor_jobs
                .or(file.executor_jobs)
                .unwrap_or(DEFAULT_EXECUTOR_JOBS),
            executor_labels: args
                .executor_labels
                .clone()
                .or(file.executor_labels)
                .unwrap_or_default()
                .into_iter()
                .map(|l| l.trim().to_string())
                .filter(|l| !l.is_empty())
                .collect(),
            poll_interval,
            metrics_public: args.metrics_public.or(file.metrics_public).unwrap_or(true),
            lease,
            log_level: args
                .log_level
                .clone()
                .or(file.log_level)
                .unwrap_or_else(|| "info".to_string()),
            config_file,
            proxy,
            access_log,
        })
    }
}

/// The proxy's plain and TLS listeners from flags, variables and the file; a TLS
/// listener needs both certificate files, and the files need the listener.
fn proxy_listen(
    args: &ServeArgs,
    file: &FileOptions,
    config_file: Option<&Path>,
) -> Result<EdgeListen, Failure> {
    let where_ = |flag: &str, key: &str, from_flag: bool| match (from_flag, config_file) {
        (true, _) | (false, None) => flag.to_string(),
        (false, Some(p)) => format!("{}: `{key}`", p.display()),
    };
    let text = args
        .proxy_listen
        .clone()
        .or_else(|| file.proxy_listen.clone())
        .unwrap_or_else(|| DEFAULT_PROXY_LISTEN.to_string());
    let listen = parse_listen(&text).map_err(|e| {
        bad_input(format!(
            "{}: {e}",
            where_(
                "--proxy-listen",
                "proxy-listen",
                args.proxy_listen.is_some()
            )
        ))
    })?;
    let tls_text = args
        .proxy_tls_listen
        .clone()
        .or_else(|| file.proxy_tls_listen.clone());
    let cert = args.proxy_tls_cert.clone().or_else(|| {
        file.proxy_tls_cert
            .clone()
            .map(|p| relative_to_file(p, config_file))
    });
    let key = args.proxy_tls_key.clone().or_else(|| {
        file.proxy_tls_key
            .clone()
            .map(|p| relative_to_file(p, config_file))
    });
    let tls = match (tls_text, cert, key) {
        (None, None, None) => None,
        (Some(text), Some(cert), Some(key)) => {
            let listen = parse_listen(&text).map_err(|e| {
                bad_input(format!(
                    "{}: {e}",
                    where_(
                        "--proxy-tls-listen",
                        "proxy-tls-listen",
                        args.proxy_tls_listen.is_some()
                    )
                ))
            })?;
            Some(TlsListen { listen, cert, key })
        }
        (None, _, _) => {
            return Err(bad_input(
                "--proxy-tls-cert and --proxy-tls-key need --proxy-tls-listen, the address to serve HTTPS on",
            ));
        }
        (Some(_), _, _) => {
            return Err(bad_input(
                "--proxy-tls-listen needs both --proxy-tls-cert FILE and --proxy-tls-key FILE (PEM)",
            ));
        }
    };
    Ok(EdgeListen { listen, tls })
}

/// How to name `tls-{what}` in a message: as the flag, or as the config file's key.
fn where_tls(flag: bool, what: &str, config_file: Option<&Path>) -> String {
    match (flag, config_file) {
        (false, Some(p)) => format!("{}: `tls-{what}`", p.display()),
        _ => format!("--tls-{what}"),
    }
}

/// `HOST:PORT`, `:PORT` (all interfaces) or `PORT` (loopback).
pub(crate) fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    if let Ok(port) = text.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    if let Some(port) = text.strip_prefix(':')
        && let Ok(port) = port.parse::<u16>()
    {
        return Ok(SocketAddr::from(([0, 0, 0, 0], port)));
    }
    let text = text
        .strip_prefix("localhost:")
        .map_or(text.to_string(), |p| format!("127.0.0.1:{p}"));
    text.parse::<SocketAddr>().map_err(|_| {
        format!("`{text}` is not an address to listen on; examples: 127.0.0.1:7878, 0.0.0.0:8080, [::1]:7878")
    })
}

/// A relative `data-dir` in a config file is relative to the file.
fn relative_to_file(dir: PathBuf, file: Option<&Path>) -> PathBuf {
    match file.and_then(Path::parent) {
        Some(parent) if dir.is_relative() => parent.join(dir),
        _ => dir,
    }
}

fn read_file(path: &Path) -> Result<FileOptions, Failure> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        bad_input(format!(
            "{}: cannot read the config file: {e}",
            path.display()
        ))
    })?;
    if text.trim().is_empty() {
        return Ok(FileOptions::default());
    }
    check_keys(path, &text)?;
    marked_yaml::from_yaml::<FileOptions>(0, &text).map_err(|e| {
        let place = match &e {
            marked_yaml::FromYamlError::FromNode(inner) => inner
                .start_mark()
                .map(|m| format!("{}:{}:{}", path.display(), m.line(), m.column())),
            marked_yaml::FromYamlError::ParseYaml(_) => None,
        }
        .unwrap_or_else(|| path.display().to_string());
        bad_input(format!(
            "{place}: {}; the keys are {}",
            lowercase_first(&e.to_string()),
            KEYS.join(", ")
        ))
    })
}

/// The config file's keys, as the flags are named.
const KEYS: &[&str] = &[
    "listen",
    "tls-cert",
    "tls-key",
    "data-dir",
    "database-url",
    "executor-jobs",
    "executor-labels",
    "poll-interval",
    "metrics-public",
    "lease",
    "log-level",
    "proxy-listen",
    "no-proxy",
    "proxy-tls-listen",
    "proxy-tls-cert",
    "proxy-tls-key",
    "access-log",
];

/// Unknown keys, located, with the closest known key as a hint.
fn check_keys(path: &Path, text: &str) -> Result<(), Failure> {
    let Ok(node) = marked_yaml::parse_yaml(0, text) else {
        // Syntax errors are reported by the deserializer with their place.
        return Ok(());
    };
    let Some(map) = node.as_mapping() else {
        return Ok(());
    };
    for key in map.keys() {
        let name = key.as_str();
        if KEYS.contains(&name) {
            continue;
        }
        let place = key
            .span()
            .start()
            .map(|m| format!("{}:{}:{}", path.display(), m.line(), m.column()))
            .unwrap_or_else(|| path.display().to_string());
        let hint = KEYS
            .iter()
            .map(|k| (strsim::jaro_winkler(k, name), k))
            .filter(|(score, _)| *score > 0.8)
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, k)| format!("did you mean `{k}`?"))
            .unwrap_or_else(|| format!("the keys are {}", KEYS.join(", ")));
        return Err(bad_input(format!("{place}: unknown key `{name}` — {hint}")));
    }
    Ok(())
}

fn lowercase_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str) -> PathBuf {
        let p = dir.join("server.yml");
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn flag_beats_file_beats_default() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(
            dir.path(),
            "listen: 127.0.0.1:9000\nexecutor-jobs: 4\nexecutor-labels: [linux, big]\npoll-interval: 1m\nmetrics-public: false\n",
        );
        let args = ServeArgs {
            config: Some(file.clone()),
            listen: Some("127.0.0.1:9100".into()),
            ..ServeArgs::default()
        };
        let opts = ServeOptions::resolve(&args, Some(dir.path().into())).unwrap();
        assert_eq!(opts.listen, "127.0.0.1:9100".parse().unwrap());
        assert_eq!(opts.executor_jobs, 4);
        assert_eq!(opts.executor_labels, vec!["linux", "big"]);
        assert_eq!(opts.poll_interval, Some(Duration::from_secs(60)));
        assert!(!opts.metrics_public);
        assert_eq!(opts.lease, DEFAULT_LEASE);
        assert_eq!(opts.config_file, Some(file));
    }

    #[test]
    fn defaults_without_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let opts = ServeOptions::resolve(&ServeArgs::default(), Some(dir.path().into())).unwrap();
        assert_eq!(opts.listen, DEFAULT_LISTEN.parse().unwrap());
        assert_eq!(opts.executor_jobs, DEFAULT_EXECUTOR_JOBS);
        assert!(opts.metrics_public);
        assert_eq!(opts.poll_interval, None);
        assert_eq!(opts.database_url, None);
        assert_eq!(opts.config_file, None);
    }

    #[test]
    fn the_data_dir_file_is_read_by_default() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CONFIG_FILE), "executor-jobs: 0\n").unwrap();
        let opts = ServeOptions::resolve(&ServeArgs::default(), Some(dir.path().into())).unwrap();
        assert_eq!(opts.executor_jobs, 0);
    }

    #[test]
    fn unknown_keys_are_located() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(dir.path(), "listen: 127.0.0.1:1\nexecutor-job: 3\n");
        let args = ServeArgs {
            config: Some(file),
            ..ServeArgs::default()
        };
        let Err(Failure::BadInput(e)) = ServeOptions::resolve(&args, None) else {
            panic!("an unknown key is bad input");
        };
        let msg = e.to_string();
        assert!(msg.contains("server.yml:2:1"), "{msg}");
        assert!(msg.contains("executor-job"), "{msg}");
    }

    #[test]
    fn proxy_options_follow_flag_file_default() {
        let dir = tempfile::tempdir().unwrap();
        let opts = ServeOptions::resolve(&ServeArgs::default(), Some(dir.path().into())).unwrap();
        let proxy = opts.proxy.expect("the proxy runs by default");
        assert_eq!(proxy.listen, DEFAULT_PROXY_LISTEN.parse().unwrap());
        assert!(proxy.tls.is_none());
        assert_eq!(opts.access_log, None);

        let file = write(
            dir.path(),
            "proxy-listen: 127.0.0.1:9080\nproxy-tls-listen: 9443\nproxy-tls-cert: cert.pem\nproxy-tls-key: key.pem\naccess-log: access.log\n",
        );
        let args = ServeArgs {
            config: Some(file),
            proxy_listen: Some("127.0.0.1:9081".into()),
            ..ServeArgs::default()
        };
        let opts = ServeOptions::resolve(&args, Some(dir.path().into())).unwrap();
        let proxy = opts.proxy.expect("the proxy runs");
        assert_eq!(proxy.listen, "127.0.0.1:9081".parse().unwrap());
        let tls = proxy.tls.expect("the file asks for TLS");
        assert_eq!(tls.listen, "127.0.0.1:9443".parse().unwrap());
        assert_eq!(tls.cert, dir.path().join("cert.pem"));
        assert_eq!(opts.access_log, Some(dir.path().join("access.log")));

        let args = ServeArgs {
            no_proxy: Some(true),
            ..ServeArgs::default()
        };
        let opts = ServeOptions::resolve(&args, Some(dir.path().into())).unwrap();
        assert!(opts.proxy.is_none());
    }

    #[test]
    fn proxy_tls_needs_listener_and_both_files() {
        let dir = tempfile::tempdir().unwrap();
        let args = ServeArgs {
            proxy_tls_listen: Some("127.0.0.1:8443".into()),
            proxy_tls_cert: Some("cert.pem".into()),
            ..ServeArgs::default()
        };
        let Err(Failure::BadInput(e)) = ServeOptions::resolve(&args, Some(dir.path().into()))
        else {
            panic!("a TLS listener without a key is bad input");
        };
        assert!(e.to_string().contains("--proxy-tls-key"), "{e}");
    }

    #[test]
    fn https_takes_both_files_from_flags_or_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let args = ServeArgs {
            tls_key: Some("key.pem".into()),
            ..ServeArgs::default()
        };
        let Err(Failure::BadInput(e)) = ServeOptions::resolve(&args, Some(dir.path().into()))
        else {
            panic!("a key without a certificate is bad input");
        };
        assert!(
            e.to_string().starts_with("--tls-key needs --tls-cert"),
            "{e}"
        );

        // In the config file, relative to it.
        let file = dir.path().join(CONFIG_FILE);
        std::fs::write(
            &file,
            "tls-cert: certs/ferry.pem\ntls-key: certs/ferry.key\n",
        )
        .unwrap();
        let opts = ServeOptions::resolve(&ServeArgs::default(), Some(dir.path().into())).unwrap();
        assert_eq!(
            opts.tls,
            Some(ServerTls {
                cert: dir.path().join("certs/ferry.pem"),
                key: dir.path().join("certs/ferry.key"),
            })
        );
        std::fs::write(&file, "tls-cert: ferry.pem\n").unwrap();
        let Err(Failure::BadInput(e)) =
            ServeOptions::resolve(&ServeArgs::default(), Some(dir.path().into()))
        else {
            panic!("a certificate without a key is bad input");
        };
        assert!(e.to_string().contains("`tls-cert` needs"), "{e}");
        assert!(e.to_string().contains("`tls-key`"), "{e}");
    }

    #[test]
    fn listen_accepts_a_bare_port_and_rejects_nonsense() {
        assert_eq!(
            parse_listen("8080").unwrap(),
            "127.0.0.1:8080".parse().unwrap()
        );
        assert_eq!(
            parse_listen(":8080").unwrap(),
            "0.0.0.0:8080".parse().unwrap()
        );
        assert_eq!(
            parse_listen("localhost:1").unwrap(),
            "127.0.0.1:1".parse().unwrap()
        );
        assert!(parse_listen("nowhere").is_err());
    }
}
