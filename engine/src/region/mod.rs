//! Build-region health: aggregates, fatigue, outlaws, selection, insights.
//!
//! Everything here is pure: plain data in, plain data out, an injected clock
//! (`now`, Unix seconds), no NATS, Postgres or tokio. The shell feeds
//! validated reports into a [`Campaign`] (which ignores duplicates and is
//! independent of arrival order), keeps operator [`Pardon`]s, and answers
//! `lull.v1.regions.*` with [`campaign_stats`], [`select`] and [`insights`].
//! See docs/regions.md for the rules.

pub mod aggregate;
pub mod campaign_json;
pub mod fatigue;
pub mod insights;
pub mod select;

pub use aggregate::{recompute, Applied, Baselines, Campaign, CampaignBaseline, RegionAggregate};
pub use campaign_json::{
    apply_import, campaign_stats, plan_import, plan_import_with, ImportPlan, ImportReport,
};
pub use fatigue::{region_health, Pardon, RegionConfig, RegionHealth};
pub use insights::insights;
pub use select::select;
