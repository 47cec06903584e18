//! The regions shell around the pure [`lull_engine::region`] logic: one actor owns
//! the per-region aggregates, the imported history and the pardons, and is
//! the only writer of the region tables (see `store::regions`).
//!
//! - Build records and bare fatigue events arrive in batches from the
//!   durable reports consumer. A batch is one transaction: the records are
//!   inserted by id (`ON CONFLICT DO NOTHING RETURNING`), exactly the new
//!   ones are applied to copies of the touched aggregates, the copies are
//!   persisted (at most every `snapshot_interval_sec`), the transaction
//!   commits, the copies replace the live aggregates, and only then is the
//!   batch answered (so the consumer acks after the commit). Duplicates,
//!   redeliveries and late arrivals change nothing (docs/regions.md).
//! - The database work runs in a task of its own, one job at a time, so
//!   queries (`regions.stats`, `.select`, `.insights`) are answered from
//!   memory while a batch commits.
//! - A restart loads the persisted aggregates and replays only the records
//!   committed after them.

mod actor;
pub mod endpoints;
mod gauges;
pub(crate) mod metrics;
mod recovery;
mod writer;

pub use actor::{spawn, ReplyBounds};
pub use recovery::{load, LoadedState};

use bytes::Bytes;
use lull_proto::msg::page::PageRequest;
use lull_proto::msg::region::{
    BuildRecord, CampaignStats, FatigueEventReport, RegionInsights, RegionInsightsRequest,
    RegionSelectReply, RegionSelectRequest, RegionState, MAX_CANDIDATES, RECENT_BUILDS_LIMIT,
};
use lull_proto::validate::{self as v, Validate};
use lull_proto::ValidationError;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use lull_engine::region::ImportReport;

/// A region report.
#[derive(Debug, Clone, PartialEq)]
pub enum RegionReport {
    /// A build record (`lull.report.build.<region>`).
    Build(Box<BuildRecord>),
    /// A fatigue event with no build (`lull.report.fatigue.<region>`).
    Fatigue(Box<FatigueEventReport>),
}

/// Shell tunables of the regions actor (`[region_service]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct RegionsTunables {
    /// Capacity of the actor's command channel. Default 1024.
    pub queue: usize,
    /// Longest time a changed aggregate waits before it is persisted,
    /// seconds; 0 persists with every batch. A restart replays the records
    /// committed since. Default 1.
    pub snapshot_interval_sec: f64,
    /// Period of the health gauges (fatigue state, outlawed), seconds.
    /// Default 5.
    pub health_sec: f64,
    /// Largest campaign document `regions.import` accepts, bytes (sent whole
    /// or in parts). Default 67108864 (64 MiB).
    pub import_max_bytes: usize,
    /// How long an import sent in parts may take, seconds. Default 300.
    pub upload_ttl_sec: f64,
    /// Imports in parts that may be in progress at once. Default 4.
    pub max_uploads: usize,
    /// Regions with metric series of their own (region names come from
    /// publishers); later ones are not exported individually, and their
    /// builds' durations go to `region="other"`. Default 500.
    pub max_metric_regions: usize,
    /// Most regions kept in memory. A report that would add a region past
    /// it is not stored: it is terminated and counted
    /// (`lull_reports_total{result="region_limit"}`,
    /// `lull_regions_rejected_total`), with one warning when the cap is
    /// reached; an import that would pass it is refused. Regions already
    /// stored are all loaded at a start. Default 1024.
    pub max_regions: usize,
}

impl Default for RegionsTunables {
    fn default() -> Self {
        RegionsTunables {
            queue: 1024,
            snapshot_interval_sec: 1.0,
            health_sec: 5.0,
            import_max_bytes: 64 << 20,
            upload_ttl_sec: 300.0,
            max_uploads: 4,
            max_metric_regions: 500,
            max_regions: lull_proto::msg::region::MAX_REGIONS,
        }
    }
}

/// `lull.v1.regions.stats` request (an empty body asks for the first page
/// of every region).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RegionStatsRequest {
    /// Only these regions (empty: every region). The campaign fields always
    /// describe the whole campaign.
    #[serde(default)]
    pub regions: Vec<String>,
    /// At most this many `recent_builds` per region (default and maximum 100).
    #[serde(default, deserialize_with = "lull_proto::int::opt")]
    pub recent_builds_limit: Option<usize>,
    /// Most regions in the reply (1..=100000, lowered to `lists.max_limit`);
    /// absent: `lists.default_limit`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lull_proto::int::opt"
    )]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page: the regions named after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

impl RegionStatsRequest {
    /// The paging fields.
    pub fn page(&self) -> PageRequest {
        PageRequest {
            limit: self.limit,
            cursor: self.cursor.clone(),
        }
    }
}

impl Validate for RegionStatsRequest {
    fn validate(&self) -> Result<(), ValidationError> {
        v::max_items("regions", self.regions.len(), MAX_CANDIDATES)?;
        for (i, r) in self.regions.iter().enumerate() {
            v::subject_token(&format!("regions[{i}]"), r)?;
        }
        if let Some(n) = self.recent_builds_limit {
            v::range(
                "recent_builds_limit",
                n as f64,
                0.0,
                RECENT_BUILDS_LIMIT as f64,
            )?;
        }
        self.page().validate()?;
        match &self.cursor {
            // A cursor is the last region name of a page.
            Some(c) => v::subject_token("cursor", c),
            None => Ok(()),
        }
    }
}

/// `lull.v1.regions.pardon` request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegionPardonRequest {
    /// The region to pardon.
    pub region: String,
}

impl Validate for RegionPardonRequest {
    fn validate(&self) -> Result<(), ValidationError> {
        v::subject_token("region", &self.region)
    }
}

/// `lull.v1.regions.pardon` reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegionPardonReply {
    /// The region.
    pub region: String,
    /// Unix seconds of the pardon.
    pub pardoned_at: f64,
    /// Whether it was outlawed before.
    pub was_outlawed: bool,
    /// Its state now (a pardon lifts an outlaw, not a rest).
    pub state: RegionState,
    /// When its current rest ends, if it rests.
    pub until: Option<f64>,
}

/// One part of a campaign document too large for one message
/// (`lull.v1.regions.import` with `upload_id`). Parts are sent in order;
/// the last one imports the joined document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportPart {
    /// Chosen by the sender; the same for every part of one document.
    pub upload_id: String,
    /// Index of this part, from 0.
    #[serde(deserialize_with = "lull_proto::int::de")]
    pub part: u32,
    /// Number of parts.
    #[serde(deserialize_with = "lull_proto::int::de")]
    pub parts: u32,
    /// This part of the document's JSON text.
    pub data: String,
}

impl Validate for ImportPart {
    fn validate(&self) -> Result<(), ValidationError> {
        v::id("upload_id", &self.upload_id)?;
        if self.parts == 0 || self.part >= self.parts {
            return Err(ValidationError::Invalid {
                field: "part".into(),
                reason: format!("must be below parts ({} >= {})", self.part, self.parts),
            });
        }
        Ok(())
    }
}

/// Reply to a part that is not the last one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportPartReply {
    /// The upload.
    pub upload_id: String,
    /// Parts received so far.
    pub received: u32,
    /// Parts expected.
    pub parts: u32,
}

/// Why a regions request failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RegionsError {
    /// The actor has stopped (shutting down).
    #[error("the regions actor has stopped")]
    Gone,
    /// No such region.
    #[error("region {0:?} is not known")]
    NotFound(String),
    /// The database write failed; nothing changed.
    #[error("storing failed: {0}")]
    Store(String),
    /// The import would keep more regions than `max_regions`.
    #[error(
        "the import would keep {would} regions, over the limit of {max} \
         (region_service.max_regions)"
    )]
    TooManyRegions {
        /// Regions after the import.
        would: usize,
        /// The limit.
        max: usize,
    },
    /// The reply would not fit in one NATS message.
    #[error(
        "the reply is {size} bytes, over the {max}-byte message limit; ask for fewer regions \
         ({{\"limit\": N}} and page with cursor = next_cursor, or {{\"regions\": [...]}}) \
         or fewer recent builds ({{\"recent_builds_limit\": N}})"
    )]
    TooLarge {
        /// Size of the reply.
        size: usize,
        /// The limit.
        max: usize,
    },
}

/// A message to the regions actor.
#[derive(Debug)]
pub(crate) enum Command {
    Stats(
        RegionStatsRequest,
        oneshot::Sender<Result<Bytes, RegionsError>>,
    ),
    Select(
        Box<RegionSelectRequest>,
        oneshot::Sender<Box<RegionSelectReply>>,
    ),
    Insights(RegionInsightsRequest, oneshot::Sender<Box<RegionInsights>>),
    Pardon(
        String,
        oneshot::Sender<Result<RegionPardonReply, RegionsError>>,
    ),
    Import(
        Box<CampaignStats>,
        oneshot::Sender<Result<ImportReport, RegionsError>>,
    ),
}

/// Cheap, cloneable handle to the regions actor.
#[derive(Debug, Clone)]
pub struct RegionsHandle {
    tx: mpsc::Sender<Command>,
    tunables: RegionsTunables,
}

impl RegionsHandle {
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, RegionsError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(make(tx))
            .await
            .map_err(|_| RegionsError::Gone)?;
        rx.await.map_err(|_| RegionsError::Gone)
    }

    /// The campaign stats document (seed 000), serialized.
    pub async fn stats(&self, req: RegionStatsRequest) -> Result<Bytes, RegionsError> {
        self.ask(|tx| Command::Stats(req, tx)).await?
    }

    /// Ranks the candidate regions.
    pub async fn select(
        &self,
        req: RegionSelectRequest,
    ) -> Result<RegionSelectReply, RegionsError> {
        Ok(*self.ask(|tx| Command::Select(Box::new(req), tx)).await?)
    }

    /// The insights of seed 001.
    pub async fn insights(
        &self,
        req: RegionInsightsRequest,
    ) -> Result<RegionInsights, RegionsError> {
        Ok(*self.ask(|tx| Command::Insights(req, tx)).await?)
    }

    /// Pardons a region (lifts an outlaw); persisted before the reply.
    pub async fn pardon(&self, region: String) -> Result<RegionPardonReply, RegionsError> {
        self.ask(|tx| Command::Pardon(region, tx)).await?
    }

    /// Imports a validated campaign document; committed before the reply.
    pub async fn import(&self, doc: CampaignStats) -> Result<ImportReport, RegionsError> {
        self.ask(|tx| Command::Import(Box::new(doc), tx)).await?
    }

    /// The shell tunables (import limits for the endpoint).
    pub fn tunables(&self) -> &RegionsTunables {
        &self.tunables
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lull_proto::validate::decode;

    #[test]
    fn stats_request_is_optional_and_bounded() {
        let r: RegionStatsRequest = decode(b"{}", 1024).unwrap();
        assert_eq!(r, RegionStatsRequest::default());
        let r: RegionStatsRequest = decode(
            br#"{"regions": ["us-west2"], "recent_builds_limit": 0}"#,
            1024,
        )
        .unwrap();
        assert_eq!(r.recent_builds_limit, Some(0));
        assert!(decode::<RegionStatsRequest>(br#"{"recent_builds_limit": 101}"#, 1024).is_err());
        assert!(decode::<RegionStatsRequest>(br#"{"regions": ["a.b"]}"#, 1024).is_err());
        let r: RegionStatsRequest = decode(br#"{"limit": 2, "cursor": "us-west2"}"#, 1024).unwrap();
        assert_eq!(r.page().size(1000, 5000), 2);
        for bad in [
            r#"{"limit": 0}"#,
            r#"{"limit": 100001}"#,
            r#"{"cursor": "a b"}"#,
            r#"{"cursor": ""}"#,
        ] {
            assert!(
                decode::<RegionStatsRequest>(bad.as_bytes(), 1024).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn pardon_and_import_parts_are_validated() {
        assert!(decode::<RegionPardonRequest>(br#"{"region": "us-west2"}"#, 1024).is_ok());
        assert!(decode::<RegionPardonRequest>(br#"{"region": "a b"}"#, 1024).is_err());
        let ok = br#"{"upload_id": "u1", "part": 1, "parts": 2, "data": "{}"}"#;
        assert!(decode::<ImportPart>(ok, 1024).is_ok());
        let bad = br#"{"upload_id": "u1", "part": 2, "parts": 2, "data": ""}"#;
        assert!(decode::<ImportPart>(bad, 1024).is_err());
    }

    #[test]
    fn too_large_says_how_to_narrow() {
        // lullctl export falls back to one region per request on this text.
        let e = RegionsError::TooLarge { size: 2, max: 1 };
        let text = e.to_string();
        assert!(text.contains("message limit"), "{text}");
        assert!(text.contains("recent_builds_limit"), "{text}");
    }

    #[test]
    fn tunables_have_defaults() {
        let t: RegionsTunables = serde_json::from_str(r#"{"snapshot_interval_sec": 0}"#).unwrap();
        assert_eq!(t.snapshot_interval_sec, 0.0);
        assert_eq!(t.queue, 1024);
        assert_eq!(t.import_max_bytes, 64 << 20);
    }
}
