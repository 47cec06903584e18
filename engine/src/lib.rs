//! `lull-engine`: every decision Lull makes, as pure code over plain data
//! and an injected clock (`now`, Unix seconds).
//!
//! - `quiet`: quiet scoring, per-host tracking with hysteresis, streaks,
//!   forecast and health.
//! - `lease`: admission policy, capacity, rate buckets, the wait queue,
//!   signed tokens and the book that applies them.
//! - `region`: build-region aggregates, fatigue, selection and insights.
//! - `worker`: execution scoring, learning, anomalies and missed runs.
//! - `page`: keyset paging of the list endpoints.
//! - `cap`: bounds on the regions and workers kept in memory.
//!
//! The crate depends on `lull-proto` and plain-data crates only; no tokio,
//! NATS, Postgres, metrics or tracing, so the compiler keeps it pure. The
//! coordinator's actors own the state and carry out what these functions
//! decide.

#![warn(missing_docs)]

pub mod cap;
pub mod lease;
pub mod page;
pub mod quiet;
pub mod region;
pub mod worker;
