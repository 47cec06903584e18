//! `lull-coordinator`: turns what agents publish into a quiet state per host,
//! grants heavy-work leases, keeps build-region health and worker execution
//! reports in Postgres, and exports everything to Prometheus.
//!
//! Every decision is made by the pure `lull-engine` crate. This crate is the
//! shell around it: one folder per owner of state (`fleet` owns hosts and
//! their quiet state, `scheduler` the live leases, `builds` the region
//! aggregates, `executions` the worker aggregates), each with its actor, its
//! endpoints and its metrics; `ingest` reads what agents publish, `store`
//! is persistence only, `service` the NATS micro service plumbing, and `app`
//! wires it all together.

#![warn(missing_docs)]

pub mod app;
pub mod builds;
pub mod config;
pub mod deprecated;
pub mod endpoints;
pub mod executions;
pub mod fleet;
pub mod handoff;
pub mod ingest;
pub mod label_cap;
pub mod leader;
pub mod leading;
pub mod metrics;
pub mod scheduler;
pub mod service;
pub mod store;
pub mod supervise;
