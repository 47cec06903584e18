//! The quiet engine: quiet score, state with hysteresis, streaks, forecast.
//!
//! Everything here is pure (no tokio, NATS or Postgres; the clock is passed
//! in as `now`, Unix seconds). The ingest actor owns one [`HostTracker`] per
//! host and calls [`HostTracker::observe`] for every snapshot; the service
//! uses the request/reply types and helpers of `history`, `streaks`,
//! `forecast` and `health`. See `docs/quiet.md`.

pub mod blocks;
pub mod config;
pub mod duration;
pub mod forecast;
pub mod health;
pub mod history;
pub mod maintenance;
pub mod score;
pub mod streaks;
pub mod tracker;
pub mod window;

pub use config::{QuietConfig, QuietConfigError};
pub use score::{assess_inputs, Assessed};
pub use tracker::HostTracker;
