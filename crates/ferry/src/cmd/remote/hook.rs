//! `ferry hook install --project NAME BARE_REPO`: a post-receive hook in a bare
//! repository on this host, so every `git push` to it starts a run.
//!
//! The hook (the engine's [`post_receive_hook`]) posts each pushed ref to the
//! project's runs endpoint with `curl`. Its token lives beside it in
//! `hooks/ferry-token` (mode 0600), never in the script: a token of its own, named
//! `hook:<project>` with the developer role, when the caller may create tokens —
//! so revoking it stops the hook and nothing else — else the caller's token.

use super::{Ctx, block_on, print_json};
use crate::cli::{Global, HookCommand};
use crate::exit::{Failure, bad_input};
use ferry_engine::server::{HOOK_TOKEN_FILE, install_hook, post_receive_hook, write_hook_token};
use ferry_types::Role;
use std::path::Path;

/// Runs a `ferry hook` command.
pub fn hook(global: &Global, cmd: HookCommand) -> Result<(), Failure> {
    match cmd {
        HookCommand::Install(args) => {
            let repo = args
                .repo
                .canonicalize()
                .map_err(|e| bad_input(format!("{}: {e}", args.repo.display())))?;
            let ctx = Ctx::new(&args.client, global.data_dir.clone())?;
            let own_token =
                super::resolve_token(args.client.token.clone(), global.data_dir.clone())?
                    .ok_or_else(|| {
                        bad_input("a token is needed: pass --token or set FERRY_TOKEN")
                    })?;
            block_on(async {
                // The project must exist, or every push would warn.
                let project = ctx.call(ctx.client.project(&args.project)).await?;
                let name = format!("hook:{}", project.name);
                let (token, dedicated) = match ctx.client.create_token(&name, Role::Developer).await
                {
                    Ok(created) => (created.token, true),
                    Err(e) if e.status() == Some(403) => (own_token, false),
                    Err(e) => return Err(super::failure(e)),
                };
                let (hook, token_file) = install(&repo, ctx.server(), &project.name, &token)?;
                if ctx.json {
                    return print_json(&serde_json::json!({
                        "hook": hook, "token_file": token_file, "dedicated_token": dedicated,
                    }));
                }
                println!(
                    "Installed {}: every push to {} starts a run of `{}`.",
                    hook,
                    repo.display(),
                    project.name
                );
                println!(
                    "Its token is in {} (mode 0600){}.",
                    token_file,
                    if dedicated {
                        format!("; `ferry token list` shows it as `{name}`")
                    } else {
                        " — your own token, as you may not create tokens".to_string()
                    }
                );
                if which_curl().is_none() {
                    eprintln!("warning: the hook needs `curl`, which is not on PATH here.");
                }
                Ok(())
            })
        }
    }
}

/// Writes the token and the hook; returns their paths.
fn install(
    repo: &Path,
    server: &str,
    project: &str,
    token: &str,
) -> Result<(String, String), Failure> {
    let token_file = write_hook_token(repo, token)
        .map_err(|e| bad_input(format!("cannot install a hook in {}: {e}", repo.display())))?;
    let script = post_receive_hook(server, project, Path::new(HOOK_TOKEN_FILE));
    let hook = install_hook(repo, &script)
        .map_err(|e| bad_input(format!("cannot install a hook in {}: {e}", repo.display())))?;
    Ok((hook.display().to_string(), token_file.display().to_string()))
}

fn which_curl() -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("curl"))
            .find(|p| p.is_file())
    })
}
