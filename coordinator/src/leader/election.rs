//! The election task: leadership is a Postgres session advisory lock held
//! on a dedicated connection, with the fencing epoch in the `lull_leader`
//! row.
//!
//! - A standby blocks in `pg_advisory_lock`. The lock is released the
//!   moment the leader's session ends: at once when the leader process
//!   dies (its socket closes), and after `idle_session_timeout` (the TTL)
//!   when the leader is paused or cut off, because a renewal is then
//!   missing and Postgres ends the idle session by its own clock.
//! - The new leader increments the epoch in the same session, so every
//!   takeover has a new, durable term.
//! - The leader renews by reading its row every `renew`; its local
//!   deadline is the instant it *sent* the last successful renewal plus the
//!   TTL minus a drift margin, on its own monotonic clock. Postgres cannot
//!   end the session before the statement has arrived plus the TTL, so the
//!   deadline always falls before any standby can hold the lock.
//! - A renewal that fails, or does not answer before the deadline, ends
//!   the leadership at once; a graceful stop unlocks so that a standby
//!   takes over without waiting for the TTL.

use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_postgres::NoTls;
use tokio_util::sync::CancellationToken;

use super::metrics as m;
use super::{Leadership, Role};

/// Tunables of the election.
#[derive(Clone)]
pub struct ElectionConfig {
    /// Postgres URL of the dedicated connection.
    pub database_url: String,
    /// This instance's id (shown in the election row and `$SRV.INFO`).
    pub instance: String,
    /// Leader TTL: Postgres ends a leader session idle for this long.
    pub ttl: Duration,
    /// How often the leader renews.
    pub renew: Duration,
    /// Taken off the TTL for the leader's own deadline (clock-rate drift
    /// between this host and Postgres, scheduling delays).
    pub margin: Duration,
    /// Wait before reconnecting after a lost connection.
    pub retry: Duration,
    /// The advisory lock key.
    pub lock_key: i64,
}

impl std::fmt::Debug for ElectionConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ElectionConfig")
            .field("instance", &self.instance)
            .field("ttl", &self.ttl)
            .field("renew", &self.renew)
            .field("margin", &self.margin)
            .field("retry", &self.retry)
            .field("lock_key", &self.lock_key)
            .finish_non_exhaustive()
    }
}

/// Why leading ended (the `reason` label of the changes counter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Loss {
    /// The renewal failed (connection lost, session ended).
    RenewFailed,
    /// The renewal did not answer before the deadline.
    DeadlinePassed,
    /// The epoch row moved on: another instance took over.
    Fenced,
    /// Graceful stop.
    Resigned,
}

impl Loss {
    fn label(self) -> &'static str {
        match self {
            Loss::RenewFailed => "renew_failed",
            Loss::DeadlinePassed => "deadline_passed",
            Loss::Fenced => "fenced",
            Loss::Resigned => "resigned",
        }
    }
}

/// Starts the election. The returned handle follows this instance's role;
/// the task ends (unlocking if it leads) once `shutdown` is cancelled.
pub fn spawn(cfg: ElectionConfig, shutdown: CancellationToken) -> (Leadership, JoinHandle<()>) {
    let (tx, rx) = watch::channel(Role::Standby);
    let handle = Leadership::new(rx, cfg.instance.clone());
    m::set_role(false, 0);
    let task = tokio::spawn(async move {
        while !shutdown.is_cancelled() {
            match campaign(&cfg, &tx, &shutdown).await {
                Ok(Some(loss)) => {
                    m::changed(loss.label());
                    tracing::warn!(reason = loss.label(), "no longer the leader");
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "leader election connection failed; retrying");
                }
            }
            let _ = tx.send(Role::Standby);
            m::set_role(false, 0);
            if shutdown.is_cancelled() {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep(cfg.retry) => {}
                _ = shutdown.cancelled() => break,
            }
        }
    });
    (handle, task)
}

/// One connection's life: wait for the lock, lead until it is lost.
/// `Ok(None)` when shut down before leading.
async fn campaign(
    cfg: &ElectionConfig,
    tx: &watch::Sender<Role>,
    shutdown: &CancellationToken,
) -> Result<Option<Loss>, tokio_postgres::Error> {
    let (client, conn) = tokio_postgres::connect(&cfg.database_url, NoTls).await?;
    let conn_task = tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "leader election connection ended");
        }
    });
    let result = lead(cfg, &client, tx, shutdown).await;
    drop(client);
    conn_task.abort();
    result
}

async fn lead(
    cfg: &ElectionConfig,
    client: &tokio_postgres::Client,
    tx: &watch::Sender<Role>,
    shutdown: &CancellationToken,
) -> Result<Option<Loss>, tokio_postgres::Error> {
    let ttl_ms = cfg.ttl.as_millis().max(1);
    client
        .batch_execute(&format!(
            "SET idle_session_timeout = {ttl_ms}; SET application_name = 'lull-leader'"
        ))
        .await?;
    let key = cfg.lock_key;
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&key];
    tokio::select! {
        r = client.execute("SELECT pg_advisory_lock($1)", &params) => { r?; }
        _ = shutdown.cancelled() => return Ok(None),
    }
    let sent = Instant::now();
    let row = client
        .query_one(
            "UPDATE lull_leader SET epoch = epoch + 1, holder = $1, elected_at = now() \
             WHERE id = 1 RETURNING epoch",
            &[&cfg.instance],
        )
        .await?;
    let epoch = u64::try_from(row.get::<_, i64>(0)).unwrap_or(0);
    let mut deadline = sent + cfg.ttl.saturating_sub(cfg.margin);
    if Instant::now() >= deadline {
        // The takeover itself took longer than the TTL allows.
        return Ok(Some(Loss::DeadlinePassed));
    }
    let _ = tx.send(Role::Leader { epoch, deadline });
    m::set_role(true, epoch);
    m::changed("elected");
    tracing::info!(epoch, instance = %cfg.instance, "elected leader");
    let epoch_i = epoch as i64;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(cfg.renew) => {}
            _ = shutdown.cancelled() => {
                let _ = tx.send(Role::Standby);
                resign(client, cfg.lock_key, epoch_i).await;
                return Ok(Some(Loss::Resigned));
            }
        }
        let sent = Instant::now();
        let left = deadline.saturating_duration_since(sent);
        // A read, not an update: the row lock stays free for the fenced
        // writers' share locks (see store::fence).
        let renewed = tokio::time::timeout(
            left,
            client.query_one("SELECT epoch FROM lull_leader WHERE id = 1", &[]),
        )
        .await
        .map(|r| r.map(|row| row.get::<_, i64>(0)));
        match renewed {
            Ok(Ok(e)) if e == epoch_i => {
                deadline = sent + cfg.ttl.saturating_sub(cfg.margin);
                tx.send_modify(|r| {
                    if let Role::Leader { deadline: d, .. } = r {
                        *d = deadline;
                    }
                });
            }
            Ok(Ok(_)) => return Ok(Some(Loss::Fenced)),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "leader renewal failed");
                return Ok(Some(Loss::RenewFailed));
            }
            Err(_) => return Ok(Some(Loss::DeadlinePassed)),
        }
    }
}

/// Gives the lock up at once, so a standby need not wait for the TTL.
async fn resign(client: &tokio_postgres::Client, key: i64, epoch: i64) {
    let done = async {
        client
            .execute(
                "UPDATE lull_leader SET holder = '' WHERE id = 1 AND epoch = $1",
                &[&epoch],
            )
            .await?;
        client
            .execute("SELECT pg_advisory_unlock($1)", &[&key])
            .await
    };
    match tokio::time::timeout(Duration::from_secs(2), done).await {
        Ok(Ok(_)) => tracing::info!(epoch, "resigned leadership"),
        Ok(Err(e)) => tracing::warn!(error = %e, "resigning leadership"),
        Err(_) => tracing::warn!("resigning leadership timed out; the TTL will release it"),
    }
}

/// The election row as any instance reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct LeaderRow {
    /// The current epoch.
    pub epoch: u64,
    /// The leading instance ('' after a resignation).
    pub holder: String,
    /// Unix seconds of the election.
    pub elected_at: Option<f64>,
}

/// Reads the election row through the pool.
pub async fn read_row(
    pool: &deadpool_postgres::Pool,
) -> Result<LeaderRow, crate::store::StoreError> {
    let c = pool.get().await?;
    let row = c
        .query_one(
            "SELECT epoch, holder, extract(epoch FROM elected_at)::float8 FROM lull_leader WHERE id = 1",
            &[],
        )
        .await?;
    Ok(LeaderRow {
        epoch: u64::try_from(row.get::<_, i64>(0)).unwrap_or(0),
        holder: row.get(1),
        elected_at: row.get(2),
    })
}
