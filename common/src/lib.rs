//! `lull-common`: the plumbing every Lull binary shares: layered
//! configuration (flags, file, environment, defaults) with redacted secrets,
//! logging, the Prometheus exporter and shutdown signals.

#![warn(missing_docs)]

pub mod config;
pub mod http;
pub mod metric;
pub mod runtime;
