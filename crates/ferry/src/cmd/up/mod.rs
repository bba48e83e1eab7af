//! `ferry up`: the first command a new user runs. It starts a server on embedded
//! defaults (SQLite in the data directory, 127.0.0.1:7878 or the next free port),
//! keeps an admin token in `admin.token` (mode 0600), registers the bundled example
//! project, starts its pipeline and prints where to watch it — then serves until
//! Ctrl-C. Running it again reuses the data directory, the token and the project.

mod example;

use super::serve::{Server, admin, options::ServeOptions};
use crate::cli::{Global, UpArgs};
use crate::exit::{Failure, bad_input};
use ferry_engine::server::{Core, TriggerOutcome, TriggerRequest};
use ferry_store::db::NewProject;
use ferry_types::Trigger;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use tokio::net::TcpListener;

/// Ports tried after the default one when it is taken.
const PORT_TRIES: u16 = 20;

/// Runs `ferry up`.
pub fn up(global: &Global, args: UpArgs) -> Result<(), Failure> {
    let mut serve_args = args.serve.clone();
    // Quiet by default: the user reads the summary, not the server's log.
    if serve_args.log_level.is_none() {
        serve_args.log_level = Some("warn".to_string());
    }
    let explicit_listen = serve_args.listen.is_some();
    let explicit_proxy = serve_args.proxy_listen.is_some();
    let mut opts = ServeOptions::resolve(&serve_args, global.data_dir.clone())?;
    // Like the server's port, the proxy's moves to the next free one unless it was
    // asked for.
    if !explicit_proxy && let Some(edge) = opts.proxy.as_mut() {
        edge.listen = free_port_from(edge.listen)?;
    }
    crate::cmd::proxy::access::init(&opts.log_level, opts.access_log.as_deref())?;
    super::serve::runtime()?.block_on(async move {
        let (store, lock) = super::serve::open_store(&opts).await?;
        let (token, new_token) = admin::up_token(&store, &opts.data_dir)
            .await
            .map_err(Failure::Error)?;
        let (listener, moved_from) = listen(opts.listen, explicit_listen).await?;
        let server = Server::start(&opts, store, listener, lock).await?;
        let url = server.url();
        let proxy_url = server.proxy_url().map(str::to_string);

        let run = if args.no_example {
            None
        } else {
            Some(start_example(server.core(), &opts.data_dir).await?)
        };
        print_summary(&Summary {
            url: &url,
            moved_from,
            token: &token,
            new_token,
            data_dir: &opts.data_dir,
            postgres: opts.database_url.is_some(),
            app: match (&run, &proxy_url) {
                (Some(Ok(_)), Some(proxy)) => Some(app_urls(proxy)),
                _ => None,
            },
            run,
        });
        server.run_until_signal().await
    })
}

/// Binds the listener; without an explicit `--listen`, a taken default port moves to
/// the next free one. Returns the listener and the port it moved from, if it did.
async fn listen(addr: SocketAddr, explicit: bool) -> Result<(TcpListener, Option<u16>), Failure> {
    if explicit {
        return Ok((super::serve::bind(addr).await?, None));
    }
    for offset in 0..=PORT_TRIES {
        let Some(port) = addr.port().checked_add(offset) else {
            break;
        };
        let candidate = SocketAddr::new(addr.ip(), port);
        match TcpListener::bind(candidate).await {
            Ok(l) => return Ok((l, (offset > 0).then_some(addr.port()))),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => continue,
            Err(e) => return Err(bad_input(format!("cannot listen on {candidate}: {e}"))),
        }
    }
    Err(bad_input(format!(
        "ports {} to {} on {} are all in use; pick one with --listen",
        addr.port(),
        addr.port().saturating_add(PORT_TRIES),
        addr.ip()
    )))
}

/// The example's run: its id, or why none started.
/// The first address from `addr` up whose port is free (the port itself when it is 0).
fn free_port_from(addr: SocketAddr) -> Result<SocketAddr, Failure> {
    if addr.port() == 0 {
        return Ok(addr);
    }
    for offset in 0..=PORT_TRIES {
        let Some(port) = addr.port().checked_add(offset) else {
            break;
        };
        let candidate = SocketAddr::new(addr.ip(), port);
        if std::net::TcpListener::bind(candidate).is_ok() {
            return Ok(candidate);
        }
    }
    Err(bad_input(format!(
        "ports {} to {} on {} are all in use; pick the proxy's with --proxy-listen",
        addr.port(),
        addr.port().saturating_add(PORT_TRIES),
        addr.ip()
    )))
}

/// Where the example app answers through the proxy at `proxy_url`
/// (`http://127.0.0.1:8080`): its environments' hosts, which resolve to this machine
/// (`*.localhost`), on the proxy's port.
fn app_urls(proxy_url: &str) -> AppUrls {
    let port = proxy_url.rsplit(':').next().unwrap_or("80");
    AppUrls {
        staging: format!("http://staging.{}.localhost:{port}/", example::SERVICE),
        production: format!("http://{}.localhost:{port}/", example::SERVICE),
    }
}

/// The example app's URLs.
struct AppUrls {
    staging: String,
    production: String,
}

type ExampleRun = Result<i64, String>;

/// Makes the example's repository and project if needed, then starts a run.
async fn start_example(core: &Core, data_dir: &Path) -> Result<ExampleRun, Failure> {
    let dir = data_dir.to_path_buf();
    let repo = tokio::task::spawn_blocking(move || example::ensure_repo(&dir))
        .await
        .map_err(|e| Failure::Error(anyhow::anyhow!("preparing the example failed: {e}")))?
        .map_err(Failure::Error)?;
    let store = core.store();
    let exists = store
        .get_project(example::NAME)
        .await
        .map_err(|e| Failure::Error(anyhow::anyhow!("cannot read the projects: {e}")))?
        .is_some();
    if !exists {
        store
            .add_project(&NewProject {
                name: example::NAME.to_string(),
                repo: repo.display().to_string(),
                default_branch: "main".to_string(),
                webhook_secret: None,
            })
            .await
            .map_err(|e| {
                Failure::Error(anyhow::anyhow!("cannot register the example project: {e}"))
            })?;
    }
    let outcome = core
        .trigger(TriggerRequest {
            project: example::NAME.to_string(),
            git_ref: None,
            sha: None,
            trigger: Trigger::Manual,
            changed_paths: None,
            delivery_id: None,
        })
        .await;
    Ok(match outcome {
        Ok(TriggerOutcome::Started(run)) => Ok(run.id),
        Ok(TriggerOutcome::Filtered(why)) => Err(why),
        Err(e) => Err(e.to_string()),
    })
}

/// What `ferry up` tells the user.
struct Summary<'a> {
    url: &'a str,
    moved_from: Option<u16>,
    token: &'a str,
    new_token: bool,
    data_dir: &'a Path,
    postgres: bool,
    run: Option<ExampleRun>,
    app: Option<AppUrls>,
}

fn print_summary(s: &Summary<'_>) {
    let mut out = std::io::stdout().lock();
    // A closed standard output is no reason to stop serving.
    let _ = write_summary(&mut out, s);
    let _ = out.flush();
}

fn write_summary(out: &mut impl Write, s: &Summary<'_>) -> std::io::Result<()> {
    let token_file = admin::token_file(s.data_dir);
    writeln!(out)?;
    match s.moved_from {
        Some(port) => writeln!(
            out,
            "Ferry is running at {} (port {port} was taken).",
            s.url
        )?,
        None => writeln!(out, "Ferry is running at {}.", s.url)?,
    }
    writeln!(out)?;
    let next = match &s.run {
        Some(Ok(id)) => format!("/runs/{id}"),
        _ => "/".to_string(),
    };
    writeln!(
        out,
        "  Open in your browser:  {}/login?token={}&next={next}",
        s.url, s.token
    )?;
    match &s.run {
        Some(Ok(id)) => writeln!(
            out,
            "  Example run:           {}/runs/{id}  (the `{}` pipeline, running now)",
            s.url,
            example::NAME
        )?,
        Some(Err(why)) => writeln!(out, "  Example run:           not started: {why}")?,
        None => {}
    }
    if let Some(app) = &s.app {
        writeln!(
            out,
            "  Example app:           {}  (staging: its `ship` job deploys it behind the proxy)",
            app.staging
        )?;
        writeln!(
            out,
            "  Then production:       ferry promote {} --from staging --to production  ->  {}",
            example::SERVICE,
            app.production
        )?;
    }
    writeln!(
        out,
        "  Admin token:           {}{}",
        s.token,
        if s.new_token { "  (new)" } else { "" }
    )?;
    writeln!(
        out,
        "                         kept in {} (mode 0600); the CLI reads it from there",
        token_file.display()
    )?;
    let database = if s.postgres {
        "state in PostgreSQL"
    } else {
        "SQLite database ferry.db"
    };
    writeln!(
        out,
        "  Data:                  {} ({database})",
        s.data_dir.display()
    )?;
    if s.run.is_some() {
        writeln!(
            out,
            "  Example repository:    {}",
            example::repo_dir(s.data_dir).display()
        )?;
    }
    writeln!(out)?;
    if s.moved_from.is_some() {
        writeln!(
            out,
            "Point the CLI at this server first: export FERRY_SERVER={}",
            s.url
        )?;
    }
    writeln!(
        out,
        "Try `ferry runs`, `ferry logs <RUN> -f`, `ferry project add NAME --repo PATH`."
    )?;
    writeln!(
        out,
        "Ctrl-C stops the server; `ferry up` again picks up where this one left off."
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_says_where_to_look_and_where_things_are() {
        let summary = Summary {
            url: "http://127.0.0.1:7879",
            moved_from: Some(7878),
            token: "ferry_TOKEN",
            new_token: true,
            data_dir: Path::new("/home/ana/.local/share/ferry"),
            postgres: false,
            run: Some(Ok(1)),
            app: Some(app_urls("http://127.0.0.1:8080")),
        };
        let mut out = Vec::new();
        write_summary(&mut out, &summary).unwrap();
        insta::assert_snapshot!(String::from_utf8(out).unwrap(), @r"
        Ferry is running at http://127.0.0.1:7879 (port 7878 was taken).

          Open in your browser:  http://127.0.0.1:7879/login?token=ferry_TOKEN&next=/runs/1
          Example run:           http://127.0.0.1:7879/runs/1  (the `static-site` pipeline, running now)
          Example app:           http://staging.example.localhost:8080/  (staging: its `ship` job deploys it behind the proxy)
          Then production:       ferry promote example --from staging --to production  ->  http://example.localhost:8080/
          Admin token:           ferry_TOKEN  (new)
                                 kept in /home/ana/.local/share/ferry/admin.token (mode 0600); the CLI reads it from there
          Data:                  /home/ana/.local/share/ferry (SQLite database ferry.db)
          Example repository:    /home/ana/.local/share/ferry/examples/static-site

        Point the CLI at this server first: export FERRY_SERVER=http://127.0.0.1:7879
        Try `ferry runs`, `ferry logs <RUN> -f`, `ferry project add NAME --repo PATH`.
        Ctrl-C stops the server; `ferry up` again picks up where this one left off.
        ");
    }
}
