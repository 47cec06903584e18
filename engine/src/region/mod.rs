//! Build-region health: aggregates, fatigue, outlaws, selection, insights.
//!
//! Everything here is pure: plain data in, plain data out, an injected clock
//! (`now`, Unix seconds), no NATS, Postgres or tokio. The shell feeds
//! validated reports into a [`Campaign`] (which ignores duplicates and is
//! independent of arrival order), keeps operator [`Pardon`]s, and answers
//! `lull.v1.regions.*` with [`campaign_stats`], [`select`] and [`insights`].
//! See docs/regions.md for the rules.

pub mod aggregate;
pub mod campaign;
pub mod campaign_json;
pub mod config;
pub mod fatigue;
pub mod insights;
pub mod order;
mod persist;
pub mod select;

pub use aggregate::RegionAggregate;
pub use campaign::{recompute, Applied, Baselines, Campaign, CampaignBaseline};
pub use campaign_json::{
    apply_import, campaign_stats, campaign_stats_page, plan_import, plan_import_with, ImportPlan,
    ImportReport, StatsPage,
};
pub use config::RegionConfig;
pub use fatigue::{region_health, Pardon, RegionHealth};
pub use insights::insights;
pub use select::select;
