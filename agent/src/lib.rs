//! `lull-agent`: the frugal host agent of Lull. It runs collectors (host,
//! disk, pressure, process, addons, api) on their own cadences, publishes a
//! `SystemStatsSnapshot` every tick through a bounded outbox to NATS,
//! publishes loop health and failure telemetry, and hands the report files
//! of its spool directory to JetStream. See docs/agent.md.

#![warn(missing_docs)]

pub mod agent;
pub mod collect;
pub mod config;
pub mod fault;
pub mod http;
pub mod outbox;
pub mod publisher;
pub mod runner;
pub mod schedule;
pub mod snapshot;
pub mod spool;
pub mod telemetry;
