//! `ferry project add|list|show|rm`.

use super::{Ctx, block_on, print_json};
use crate::cli::{Global, ProjectCommand};
use crate::exit::Failure;
use crate::table::{Table, ago};
use ferry_client::api::{NewProject, Project};
use std::path::Path;

/// Runs a `ferry project` command.
pub fn project(global: &Global, cmd: ProjectCommand) -> Result<(), Failure> {
    match cmd {
        ProjectCommand::Add(args) => {
            let ctx = Ctx::new(&args.client, global.data_dir.clone())?;
            let new = NewProject {
                name: args.name.clone(),
                repo: repo_location(&args.repo),
                branch: Some(args.branch.clone()),
                webhook_secret: args.webhook_secret.clone(),
            };
            block_on(async {
                let project = ctx.call(ctx.client.add_project(&new)).await?;
                if ctx.json {
                    return print_json(&project);
                }
                println!(
                    "Project `{}` added: {} (branch {}).",
                    project.name, project.repo, project.default_branch
                );
                print_next_steps(&ctx, &project);
                Ok(())
            })
        }
        ProjectCommand::List(args) => {
            let ctx = Ctx::new(&args.client, global.data_dir.clone())?;
            block_on(async {
                let projects = ctx.call(ctx.client.projects()).await?;
                if ctx.json {
                    return print_json(&projects);
                }
                if projects.is_empty() {
                    eprintln!(
                        "No projects yet; add one with `ferry project add NAME --repo URL_OR_PATH`."
                    );
                    return Ok(());
                }
                let mut t = Table::new(&["NAME", "BRANCH", "WEBHOOKS", "ADDED", "REPOSITORY"]);
                for p in &projects {
                    t.row(vec![
                        p.name.clone(),
                        p.default_branch.clone(),
                        if p.has_webhook_secret {
                            "signed"
                        } else {
                            "off"
                        }
                        .to_string(),
                        ago(p.created_at),
                        p.repo.clone(),
                    ]);
                }
                t.print();
                Ok(())
            })
        }
        ProjectCommand::Show(args) => {
            let ctx = Ctx::new(&args.client, global.data_dir.clone())?;
            block_on(async {
                let project = ctx.call(ctx.client.project(&args.name)).await?;
                if ctx.json {
                    return print_json(&project);
                }
                println!("Project     {}", project.name);
                println!("Repository  {}", project.repo);
                println!("Branch      {}", project.default_branch);
                println!(
                    "Added       {}",
                    crate::table::timestamp(project.created_at)
                );
                println!(
                    "Webhooks    {}",
                    if project.has_webhook_secret {
                        "accepted when signed with the project's secret"
                    } else {
                        "refused (no webhook secret; add the project with --webhook-secret)"
                    }
                );
                if project.has_webhook_secret {
                    for forge in ["github", "gitlab", "gitea"] {
                        println!(
                            "            {}/hooks/{forge}/{}",
                            ctx.server(),
                            project.name
                        );
                    }
                }
                Ok(())
            })
        }
        ProjectCommand::Rm(args) => {
            let ctx = Ctx::new(&args.client, global.data_dir.clone())?;
            block_on(async {
                ctx.call(ctx.client.remove_project(&args.name)).await?;
                if ctx.json {
                    return print_json(&serde_json::json!({ "removed": args.name }));
                }
                println!("Project `{}` removed.", args.name);
                Ok(())
            })
        }
    }
}

/// A local path is sent as an absolute path (the server resolves it on its host);
/// URLs and `user@host:path` locations are sent as given.
fn repo_location(repo: &str) -> String {
    let looks_remote = repo.contains("://") || (repo.contains('@') && repo.contains(':'));
    if looks_remote {
        return repo.to_string();
    }
    Path::new(repo)
        .canonicalize()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| repo.to_string())
}

fn print_next_steps(ctx: &Ctx, project: &Project) {
    println!("Start a run:     ferry trigger {}", project.name);
    if project.has_webhook_secret {
        println!(
            "Webhook URL:     {}/hooks/github/{}  (or /hooks/gitlab/…, /hooks/gitea/…)",
            ctx.server(),
            project.name
        );
    }
    if Path::new(&project.repo).is_dir() {
        println!(
            "Run on push:     ferry hook install --project {} <BARE_REPO>",
            project.name
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_kept_and_paths_made_absolute() {
        assert_eq!(
            repo_location("https://git.example/a.git"),
            "https://git.example/a.git"
        );
        assert_eq!(
            repo_location("git@host:team/app.git"),
            "git@host:team/app.git"
        );
        let dir = tempfile::tempdir().unwrap();
        let abs = repo_location(dir.path().to_str().unwrap());
        assert!(Path::new(&abs).is_absolute());
    }
}
