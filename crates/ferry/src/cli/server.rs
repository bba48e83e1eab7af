//! The command line of the server side: `ferry serve`, `ferry up` and `ferry agent`.
//!
//! Every serve option is optional here: [`crate::cmd::serve::options`] merges flags and
//! `FERRY_*` variables (clap reads both) with the config file and the defaults, in
//! that order of precedence, into one `ServeOptions`.

use clap::Args;
use clap::builder::BoolishValueParser;
use std::path::PathBuf;
use std::time::Duration;

/// `ferry serve`.
#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// The server's config file (YAML, keys named like these flags)
    /// [default: ferry-server.yml in the data directory, if it exists].
    #[arg(long, env = "FERRY_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// The address to listen on [default: 127.0.0.1:7878].
    #[arg(long, env = "FERRY_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,
    /// Serve the API and web UI over HTTPS with this certificate chain (PEM, leaf
    /// first; needs --tls-key) [default: plain HTTP].
    #[arg(long, env = "FERRY_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, env = "FERRY_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// A `postgres://` URL to keep state in PostgreSQL
    /// [default: embedded SQLite, ferry.db in the data directory].
    #[arg(long, env = "FERRY_DATABASE_URL", value_name = "URL")]
    pub database_url: Option<String>,
    /// Jobs the server's own executor runs at once; 0 leaves every job to agents
    /// [default: 2].
    #[arg(long, env = "FERRY_EXECUTOR_JOBS", value_name = "N")]
    pub executor_jobs: Option<usize>,
    /// Labels of the server's own executor, comma-separated (a job's `runs-on` must be
    /// among them) [default: none].
    #[arg(
        long,
        env = "FERRY_EXECUTOR_LABELS",
        value_name = "LABELS",
        value_delimiter = ','
    )]
    pub executor_labels: Option<Vec<String>>,
    /// How often repositories are polled for new commits, `off` to never poll
    /// [default: off].
    #[arg(long, env = "FERRY_POLL_INTERVAL", value_name = "DURATION", value_parser = parse_interval)]
    pub poll_interval: Option<Interval>,
    /// Whether `/metrics` answers without a token [default: true].
    #[arg(long, env = "FERRY_METRICS_PUBLIC", value_name = "BOOL",
          num_args = 0..=1, default_missing_value = "true",
          value_parser = BoolishValueParser::new())]
    pub metrics_public: Option<bool>,
    /// How long a job's lease lasts without a heartbeat: an agent that goes away is
    /// noticed this long after its last heartbeat [default: 15s].
    #[arg(long, env = "FERRY_LEASE", value_name = "DURATION", value_parser = super::humantime_duration)]
    pub lease: Option<Duration>,
    /// Log level (`error`, `warn`, `info`, `debug`, `trace`); `RUST_LOG` overrides it
    /// [default: info].
    #[arg(long, env = "FERRY_LOG_LEVEL", value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Where the edge proxy in front of deployed services listens
    /// [default: 127.0.0.1:8080].
    #[arg(long, env = "FERRY_PROXY_LISTEN", value_name = "ADDR")]
    pub proxy_listen: Option<String>,
    /// Run without the edge proxy: deploys still start and check releases, but route no
    /// traffic.
    #[arg(long, env = "FERRY_NO_PROXY", value_name = "BOOL",
          num_args = 0..=1, default_missing_value = "true",
          value_parser = BoolishValueParser::new())]
    pub no_proxy: Option<bool>,
    /// Where the edge proxy also listens for HTTPS (needs --proxy-tls-cert and
    /// --proxy-tls-key) [default: no HTTPS].
    #[arg(long, env = "FERRY_PROXY_TLS_LISTEN", value_name = "ADDR")]
    pub proxy_tls_listen: Option<String>,
    /// The proxy's certificate chain, PEM, leaf first.
    #[arg(long, env = "FERRY_PROXY_TLS_CERT", value_name = "FILE")]
    pub proxy_tls_cert: Option<PathBuf>,
    /// The proxy's private key, PEM.
    #[arg(long, env = "FERRY_PROXY_TLS_KEY", value_name = "FILE")]
    pub proxy_tls_key: Option<PathBuf>,
    /// Append one line per proxied request to this file instead of the server's log
    /// (format in docs/deploy.md) [default: the server's log, target
    /// `ferry_proxy::access`].
    #[arg(long, env = "FERRY_ACCESS_LOG", value_name = "FILE")]
    pub access_log: Option<PathBuf>,
}

/// A polling interval, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval(pub Option<Duration>);

/// `off`, `never`, `0` → no polling; otherwise a humantime duration.
pub(crate) fn parse_interval(s: &str) -> Result<Interval, String> {
    match s.trim() {
        "off" | "never" | "0" | "" => Ok(Interval(None)),
        other => super::humantime_duration(other).map(|d| Interval(Some(d))),
    }
}

/// `ferry up`.
#[derive(Debug, Clone, Args)]
pub struct UpArgs {
    /// Everything `ferry serve` takes.
    #[command(flatten)]
    pub serve: ServeArgs,
    /// Do not register and run the bundled example project.
    #[arg(long)]
    pub no_example: bool,
}

/// `ferry agent`.
#[derive(Debug, Clone, Args)]
pub struct AgentArgs {
    /// The server to take jobs from.
    #[arg(
        long,
        env = "FERRY_SERVER",
        value_name = "URL",
        default_value = "http://127.0.0.1:7878"
    )]
    pub server: String,
    /// The API token the agent authenticates with, e.g. from
    /// `ferry token create --name agent-1 --role developer`
    /// [default: admin.token in the data directory, as `ferry up` writes it].
    #[arg(
        long,
        env = "FERRY_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// A PEM file of CA certificates to trust besides the system's, for an `https`
    /// server whose certificate a private CA signed (or a self-signed one).
    #[arg(long, env = "FERRY_CA_CERT", value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// The agent's labels, comma-separated; it takes only jobs whose `runs-on` labels
    /// are all among them.
    #[arg(
        long,
        env = "FERRY_AGENT_LABELS",
        value_name = "LABELS",
        value_delimiter = ','
    )]
    pub labels: Vec<String>,
    /// How many jobs it runs at once.
    #[arg(long, env = "FERRY_AGENT_JOBS", value_name = "N", default_value_t = 1)]
    pub jobs: usize,
    /// The agent's name, shown by the server [default: the host name].
    #[arg(long, env = "FERRY_AGENT_NAME", value_name = "NAME")]
    pub name: Option<String>,
    /// SIGTERM → SIGKILL grace for cancelled steps.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = super::humantime_duration)]
    pub grace: Duration,
    /// Log level; `RUST_LOG` overrides it.
    #[arg(
        long,
        env = "FERRY_LOG_LEVEL",
        value_name = "LEVEL",
        default_value = "info"
    )]
    pub log_level: String,
}

/// `ferry proxy`.
#[derive(Debug, Clone, Args)]
pub struct ProxyArgs {
    /// The routes file (YAML: host, path, service, release and canary per route);
    /// reloaded on SIGHUP and when it changes.
    #[arg(long, value_name = "FILE")]
    pub routes: PathBuf,
    /// Where to listen for plain HTTP (HTTP/1.1 and HTTP/2).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Where to serve `/metrics` (Prometheus text) [default: nowhere].
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<String>,
    /// Where to listen for HTTPS (needs --tls-cert and --tls-key) [default: no HTTPS].
    #[arg(long, value_name = "ADDR")]
    pub tls_listen: Option<String>,
    /// The certificate chain, PEM, leaf first.
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// The private key, PEM.
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Append one line per request to this file instead of the log on standard error.
    #[arg(long, value_name = "FILE")]
    pub access_log: Option<PathBuf>,
    /// Log level; `RUST_LOG` overrides it.
    #[arg(
        long,
        env = "FERRY_LOG_LEVEL",
        value_name = "LEVEL",
        default_value = "info"
    )]
    pub log_level: String,
}
