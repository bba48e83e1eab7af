//! The schema migrations, embedded in the binary and applied by sqlx's migrator.
//!
//! The SQL lives in `migrations/<backend>/NNNN_name.sql`; `include_str!` puts it in the
//! binary (no files to ship, no `DATABASE_URL` at build time), and a small
//! [`MigrationSource`] hands it to `sqlx::migrate::Migrator`, which records what it
//! applied in `_sqlx_migrations`, skips it next time and refuses a database whose
//! applied migrations were edited afterwards. On PostgreSQL the migrator holds an
//! advisory lock, so servers starting together migrate once.

use super::DbError;
use super::conn::Pool;
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;

/// One migration: version, description and SQL for each backend.
struct Step {
    version: i64,
    description: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

/// Every migration, oldest first. Append; never edit one that has shipped.
const STEPS: &[Step] = &[
    Step {
        version: 1,
        description: "init",
        sqlite: include_str!("../../migrations/sqlite/0001_init.sql"),
        postgres: include_str!("../../migrations/postgres/0001_init.sql"),
    },
    Step {
        version: 2,
        description: "deploys",
        sqlite: include_str!("../../migrations/sqlite/0002_deploys.sql"),
        postgres: include_str!("../../migrations/postgres/0002_deploys.sql"),
    },
];

/// The embedded migrations for one backend.
#[derive(Debug, Clone, Copy)]
struct Embedded {
    postgres: bool,
}

impl<'s> MigrationSource<'s> for Embedded {
    fn resolve(
        self,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send + 's>> {
        let migrations = STEPS
            .iter()
            .map(|step| {
                let sql = if self.postgres {
                    step.postgres
                } else {
                    step.sqlite
                };
                Migration::new(
                    step.version,
                    Cow::Borrowed(step.description),
                    MigrationType::Simple,
                    Cow::Borrowed(sql),
                    false,
                )
            })
            .collect();
        Box::pin(std::future::ready(Ok(migrations)))
    }
}

/// Applies every migration not yet applied.
pub(crate) async fn run(pool: &Pool) -> Result<(), DbError> {
    match pool {
        Pool::Sqlite(p) => {
            Migrator::new(Embedded { postgres: false })
                .await?
                .run(p)
                .await?
        }
        Pool::Postgres(p) => {
            Migrator::new(Embedded { postgres: true })
                .await?
                .run(p)
                .await?
        }
    }
    Ok(())
}
