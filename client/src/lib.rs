//! `lull-client`: the Rust SDK for Lull. Connecting to NATS with every
//! authentication option (`connect`), request helpers that understand the
//! error reply (`request`), the lease client with its heartbeating guard
//! (`lease`), the durable report publisher (`report`) and this host's id
//! as a publisher (`host`).

#![warn(missing_docs)]

pub mod connect;
pub mod host;
pub mod lease;
pub mod report;
pub mod request;
