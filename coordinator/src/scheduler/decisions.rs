//! `lease.decisions`: a read-only query of the lease audit trail in
//! Postgres (grants, denials and queued requests with their reason codes
//! and reasons), filtered by kind, addon, host and time. Every instance
//! answers it (the trail is shared); it never touches the lease book.
//! Decisions still queued in the leader's audit writer show up after its
//! next flush.

use deadpool_postgres::Pool;
use lull_common::runtime::now_unix;
use lull_proto::error::ErrorCode;
use lull_proto::error::ValidationError;
use lull_proto::msg::decisions::{
    DecisionCursor, DecisionKind, DecisionsReply, DecisionsRequest, DEFAULT_LIMIT,
    DEFAULT_LOOKBACK_SEC,
};
use lull_proto::subjects::endpoints as ep;
use lull_proto::ErrorReply;

use crate::service::{err, typed, Handler};
use crate::store::leases::{decisions, DecisionFilter};

/// The filter a request asks for, at `now` (a cursor it did not make is
/// refused).
pub fn filter(req: &DecisionsRequest, now: f64) -> Result<DecisionFilter, ValidationError> {
    let kinds = match req.kind {
        Some(k) => vec![k.as_str()],
        None => [
            DecisionKind::Granted,
            DecisionKind::Denied,
            DecisionKind::Queued,
        ]
        .iter()
        .map(|k| k.as_str())
        .collect(),
    };
    Ok(DecisionFilter {
        kinds,
        addon_id: req.addon_id.clone(),
        host_id: req.host_id.clone(),
        since: req.since.unwrap_or(now - DEFAULT_LOOKBACK_SEC),
        limit: i64::from(req.limit.unwrap_or(DEFAULT_LIMIT)),
        before: req
            .cursor
            .as_deref()
            .map(DecisionCursor::decode)
            .transpose()?,
    })
}

async fn answer(pool: &Pool, req: DecisionsRequest) -> Result<DecisionsReply, ErrorReply> {
    let mut f = filter(&req, now_unix()).map_err(|e| ErrorReply::from(&e))?;
    let page = usize::try_from(f.limit).unwrap_or(0);
    // One row more than the page says whether an older page follows.
    f.limit = f.limit.saturating_add(1);
    let (mut rows, counts) = decisions(pool, &f).await.map_err(|e| {
        tracing::warn!(error = %e, "lease decisions query failed");
        err(ErrorCode::Unavailable, format!("lease audit: {e}"))
    })?;
    let more = rows.len() > page;
    rows.truncate(page);
    let next_cursor = if more {
        let at: Vec<f64> = rows.iter().map(|d| d.at).collect();
        DecisionCursor::after(f.before, &at).map(|c| c.encode())
    } else {
        None
    };
    Ok(DecisionsReply {
        since: f.since,
        truncated: more,
        next_cursor,
        decisions: rows,
        counts: counts
            .into_iter()
            .map(|(k, n)| (k, u64::try_from(n).unwrap_or(0)))
            .collect(),
    })
}

/// `lease.decisions` with its handler.
pub fn endpoints(pool: &Pool, max: usize) -> Vec<(&'static str, Handler)> {
    let pool = pool.clone();
    let h = typed(max, move |req: DecisionsRequest| {
        let pool = pool.clone();
        async move { answer(&pool, req).await }
    });
    vec![(ep::LEASE_DECISIONS, h)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_look_back_an_hour_at_every_decision() {
        let f = filter(&DecisionsRequest::default(), 10_000.0).unwrap();
        assert_eq!(f.kinds, ["granted", "denied", "queued"]);
        assert_eq!(f.since, 10_000.0 - 3600.0);
        assert_eq!(f.limit, 100);
        let f = filter(
            &DecisionsRequest {
                kind: Some(DecisionKind::Denied),
                addon_id: Some("indexer".into()),
                since: Some(5.0),
                limit: Some(7),
                ..Default::default()
            },
            10_000.0,
        )
        .unwrap();
        assert_eq!(f.kinds, ["denied"]);
        assert_eq!((f.since, f.limit), (5.0, 7));
        assert_eq!(f.addon_id.as_deref(), Some("indexer"));
        assert_eq!(f.before, None);
        let f = filter(
            &DecisionsRequest {
                cursor: Some("9.5|3".into()),
                ..Default::default()
            },
            10_000.0,
        )
        .unwrap();
        assert_eq!(f.before, Some(DecisionCursor { at: 9.5, skip: 3 }));
        let bad = DecisionsRequest {
            cursor: Some("web-1".into()),
            ..Default::default()
        };
        assert!(filter(&bad, 10_000.0).is_err());
    }
}
