//! `lull.v1.coordinator.leader`, answered by every instance: its own role,
//! and who leads in which epoch as the election row says.

use std::time::Instant;

use lull_proto::msg::leader::{CoordinatorRole, LeaderReply};
use lull_proto::subjects::endpoints as ep;

use super::election::read_row;
use super::Leadership;
use crate::service::{err, typed, Empty, Handler};
use lull_proto::error::ErrorCode;

/// The endpoint with its handler.
pub fn endpoints(
    leadership: &Leadership,
    pool: &deadpool_postgres::Pool,
    max: usize,
) -> Vec<(&'static str, Handler)> {
    let (leadership, pool, started) = (leadership.clone(), pool.clone(), Instant::now());
    let h = typed(max, move |_: Empty| {
        let (leadership, pool) = (leadership.clone(), pool.clone());
        async move {
            let row = read_row(&pool).await.map_err(|e| {
                err(
                    ErrorCode::Unavailable,
                    format!("reading the election row: {e}"),
                )
            })?;
            let role = if leadership.epoch_now().is_some() {
                CoordinatorRole::Leader
            } else {
                CoordinatorRole::Standby
            };
            Ok(LeaderReply {
                instance: leadership.instance().to_string(),
                role,
                leader: row.holder,
                epoch: row.epoch,
                elected_at: row.elected_at,
                uptime_sec: started.elapsed().as_secs_f64(),
            })
        }
    });
    vec![(ep::COORDINATOR_LEADER, h)]
}
