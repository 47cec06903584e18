//! Versioned, idempotent schema migrations, applied at start-up under an
//! advisory lock so that two coordinators starting together do not race.

use deadpool_postgres::Pool;

use super::StoreError;

/// One migration: version, name and SQL.
pub struct Migration {
    /// Strictly increasing version.
    pub version: i32,
    /// Short name.
    pub name: &'static str,
    /// The SQL, run in one transaction.
    pub sql: &'static str,
}

/// Every migration, in order. Append only: never edit one that has shipped.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "hosts",
        sql: include_str!("migrations/0001_hosts.sql"),
    },
    Migration {
        version: 2,
        name: "history",
        sql: include_str!("migrations/0002_history.sql"),
    },
    Migration {
        version: 3,
        name: "blocks",
        sql: include_str!("migrations/0003_blocks.sql"),
    },
    Migration {
        version: 4,
        name: "leases",
        sql: include_str!("migrations/0004_leases.sql"),
    },
    Migration {
        version: 5,
        name: "regions",
        sql: include_str!("migrations/0005_regions.sql"),
    },
    Migration {
        version: 6,
        name: "workers",
        sql: include_str!("migrations/0006_workers.sql"),
    },
    Migration {
        version: 7,
        name: "lease_audit_indexes",
        sql: include_str!("migrations/0007_lease_audit_indexes.sql"),
    },
    Migration {
        version: 8,
        name: "leader",
        sql: include_str!("migrations/0008_leader.sql"),
    },
    Migration {
        version: 9,
        name: "lease_queue",
        sql: include_str!("migrations/0009_lease_queue.sql"),
    },
    Migration {
        version: 10,
        name: "maintenance_windows",
        sql: include_str!("migrations/0010_maintenance_windows.sql"),
    },
];

/// Advisory lock key used while migrating ("lull" in ASCII).
const LOCK_KEY: i64 = 0x6c75_6c6c;

/// Applies every migration not yet applied; returns how many ran.
pub async fn migrate(pool: &Pool) -> Result<usize, StoreError> {
    let mut client = pool.get().await?;
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version INTEGER PRIMARY KEY,
                name TEXT NOT NULL,
                applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        )
        .await?;
    client
        .execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY])
        .await?;
    let result = apply_pending(&mut client).await;
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY])
        .await?;
    result
}

async fn apply_pending(client: &mut deadpool_postgres::Object) -> Result<usize, StoreError> {
    let applied: Vec<i32> = client
        .query("SELECT version FROM schema_migrations", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut ran = 0;
    for m in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
        let tx = client.transaction().await?;
        tx.batch_execute(m.sql).await?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
            &[&m.version, &m.name],
        )
        .await?;
        tx.commit().await?;
        tracing::info!(version = m.version, name = m.name, "applied migration");
        ran += 1;
    }
    Ok(ran)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_increase() {
        for w in MIGRATIONS.windows(2) {
            assert!(w[0].version < w[1].version);
        }
    }
}
