//! Fencing at the storage: the leadership epoch this process writes
//! reports under. The leader's transactions that save aggregates take a
//! share lock on the election row and check its epoch first, so that a
//! former leader's write either commits before the next leader's epoch
//! increment (which waits for the lock, and then loads what was committed)
//! or is refused after it. Tools and unit tests that never lead write
//! unfenced.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio_postgres::Transaction;

use super::StoreError;

/// The process writes without fencing (no election: tools, unit tests).
pub const UNFENCED: u64 = u64::MAX;

static EPOCH: AtomicU64 = AtomicU64::new(UNFENCED);

/// From now on, writes are fenced by `epoch`.
pub fn lead(epoch: u64) {
    EPOCH.store(epoch, Ordering::SeqCst);
}

/// From now on, fenced writes are refused (this process stands by).
pub fn stand_by() {
    EPOCH.store(0, Ordering::SeqCst);
}

/// Checks, inside `tx`, that this process still writes in the current
/// epoch; holds a share lock on the election row until `tx` ends.
pub async fn check(tx: &Transaction<'_>) -> Result<(), StoreError> {
    let mine = EPOCH.load(Ordering::SeqCst);
    if mine == UNFENCED {
        return Ok(());
    }
    check_epoch(tx, mine).await
}

/// Checks, inside `tx`, that the election's epoch is `mine`; holds a share
/// lock on the election row until `tx` ends.
pub async fn check_epoch(tx: &Transaction<'_>, mine: u64) -> Result<(), StoreError> {
    let row = tx
        .query_one("SELECT epoch FROM lull_leader WHERE id = 1 FOR SHARE", &[])
        .await?;
    let current = u64::try_from(row.get::<_, i64>(0)).unwrap_or(0);
    if current != mine {
        return Err(StoreError::Fenced { mine, current });
    }
    Ok(())
}
