//! `lull-client`: the Rust SDK for Lull. Connecting to NATS with every
//! authentication option (`connect`), request helpers that understand the
//! error reply (`request`), the lease client with its heartbeating guard
//! (`lease`), and the durable report publisher (`report`).

#![warn(missing_docs)]

pub mod connect;
pub mod lease;
pub mod report;
pub mod request;
