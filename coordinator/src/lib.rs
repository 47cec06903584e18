//! `lull-coordinator`: turns what agents publish into a quiet state per host,
//! grants heavy-work leases, keeps build-region health and worker execution
//! reports in Postgres, and exports everything to Prometheus.
//!
//! Pure decision logic lives in `quiet`, `lease`, `region` and `worker`; the
//! shell around it (NATS, Postgres, timers) in `ingest`, `service`, `store`
//! and `app`.

#![warn(missing_docs)]

pub mod app;
pub mod config;
pub mod endpoints;
pub mod fleet;
pub mod ingest;
pub mod metrics;
pub mod regions;
pub mod scheduler;
pub mod service;
pub mod store;
pub mod workers;
