//! The lease scheduler: policy, capacity, rate limits, tokens, queue and the book.
//!
//! Everything here is pure (no tokio, NATS or Postgres; the clock is passed
//! in as `now`, Unix seconds). The coordinator wraps a [`book::Book`] in one
//! actor task and carries out the [`book::Effect`]s it returns. See
//! `docs/leases.md`.

pub mod book;
pub mod bucket;
pub mod capacity;
pub mod config;
pub mod policy;
pub mod queue;
pub mod token;

pub use book::{AuditKind, AuditRecord, Book, BookError, Effect, Outcome};
pub use config::LeaseConfig;
pub use policy::{Decision, Denial, Grant, HostView};
pub use token::{LeaseKey, LeaseTerms, TokenError};
