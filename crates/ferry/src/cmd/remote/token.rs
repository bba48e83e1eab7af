//! `ferry token create|list|revoke`.

use super::{Ctx, block_on, print_json};
use crate::cli::{Global, TokenCommand};
use crate::exit::{Failure, bad_input};
use crate::table::{Table, ago, or_dash};
use ferry_types::Role;

/// Runs a `ferry token` command.
pub fn token(global: &Global, cmd: TokenCommand) -> Result<(), Failure> {
    match cmd {
        TokenCommand::Create(args) => {
            let role: Role = args.role.parse().map_err(|_| {
                bad_input(format!(
                    "`{}` is not a role; the roles are viewer, developer, operator and admin",
                    args.role
                ))
            })?;
            let ctx = Ctx::new(&args.client, global.data_dir.clone())?;
            block_on(async {
                let created = ctx.call(ctx.client.create_token(&args.name, role)).await?;
                if ctx.json {
                    return print_json(&created);
                }
                eprintln!(
                    "Token {} `{}` ({}) created. It is shown this once; only its hash is stored:",
                    created.info.id, created.info.name, created.info.role
                );
                println!("{}", created.token);
                Ok(())
            })
        }
        TokenCommand::List(args) => {
            let ctx = Ctx::new(&args.client, global.data_dir.clone())?;
            block_on(async {
                let tokens = ctx.call(ctx.client.tokens()).await?;
                if ctx.json {
                    return print_json(&tokens);
                }
                let mut t = Table::new(&["ID", "NAME", "ROLE", "CREATED", "REVOKED"]);
                for tok in &tokens {
                    t.row(vec![
                        tok.id.to_string(),
                        tok.name.clone(),
                        tok.role.to_string(),
                        ago(tok.created_at),
                        or_dash(tok.revoked_at.map(ago)),
                    ]);
                }
                t.print();
                Ok(())
            })
        }
        TokenCommand::Revoke(args) => {
            let ctx = Ctx::new(&args.client, global.data_dir.clone())?;
            block_on(async {
                ctx.call(ctx.client.revoke_token(args.id)).await?;
                if ctx.json {
                    return print_json(&serde_json::json!({ "revoked": args.id }));
                }
                println!("Token {} revoked; it stops working at once.", args.id);
                Ok(())
            })
        }
    }
}
