//! Client SDK: request helpers that understand the error reply, the lease
//! client with its heartbeating guard, and the report publisher.

pub mod lease;
pub mod report;
pub mod request;
