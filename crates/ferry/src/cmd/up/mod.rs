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
    let opts = ServeOptions::resolve(&serve_args, global.data_dir.clone())?;
    crate::logging::init(&opts.log_level)?;
    super::serve::runtime()?.block_on(async move {
        let (store, lock) = super::serve::open_store(&opts).await?;
        let (token, new_token) = admin::up_token(&store, &opts.data_dir)
            .await
            .map_err(Failure::Error)?;
        let (listener, moved_from) = listen(opts.listen, explicit_listen).await?;
        let server = Server::start(&opts, store, listener, lock).await?;
        let url = server.url();

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
    run: Option<ExampleRun>,
}

fn print_summary(s: &Summary<'_>) {
    let token_file = admin::token_file(s.data_dir);
    println!();
    match s.moved_from {
        Some(port) => println!("Ferry is running at {} (port {port} was taken).", s.url),
        None => println!("Ferry is running at {}.", s.url),
    }
    println!();
    let next = match &s.run {
        Some(Ok(id)) => format!("/runs/{id}"),
        _ => "/".to_string(),
    };
    println!(
        "  Open in your browser:  {}/login?token={}&next={next}",
        s.url, s.token
    );
    match &s.run {
        Some(Ok(id)) => println!(
            "  Example run:           {}/runs/{id}  (the `{}` pipeline, running now)",
            s.url,
            example::NAME
        ),
        Some(Err(why)) => println!("  Example run:           not started: {why}"),
        None => {}
    }
    println!(
        "  Admin token:           {}{}",
        s.token,
        if s.new_token { "  (new)" } else { "" }
    );
    println!(
        "                         kept in {} (mode 0600); the CLI reads it from there",
        token_file.display()
    );
    println!(
        "  Data:                  {} (SQLite database ferry.db)",
        s.data_dir.display()
    );
    if s.run.is_some() {
        println!(
            "  Example repository:    {}",
            example::repo_dir(s.data_dir).display()
        );
    }
    println!();
    if s.moved_from.is_some() {
        println!(
            "Point the CLI at this server first: export FERRY_SERVER={}",
            s.url
        );
    }
    println!("Try `ferry runs`, `ferry logs <RUN> -f`, `ferry project add NAME --repo PATH`.");
    println!("Ctrl-C stops the server; `ferry up` again picks up where this one left off.");
}
