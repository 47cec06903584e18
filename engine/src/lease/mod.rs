//! The lease scheduler: policy, capacity, rate limits, tokens, queue and the book.
//!
//! Everything here is pure (no tokio, NATS or Postgres; the clock is passed
//! in as `now`, Unix seconds). The coordinator wraps a [`book::Book`] in one
//! actor task and carries out the [`book::Effect`]s it returns. See
//! `docs/leases.md`.

pub mod audit;
pub mod book;
pub mod bucket;
pub mod capacity;
pub mod config;
pub mod outcome;
pub mod policy;
pub mod queue;
pub mod token;

pub use audit::{AuditKind, AuditRecord};
pub use book::{BadCursor, Book, Pos, StatusCursor};
pub use config::LeaseConfig;
pub use outcome::{BookError, Effect, Outcome, QueueChange};
pub use policy::{Admission, Decision, Denial, Grant, HostView, Ruling};
pub use token::{LeaseKey, LeaseTerms, TokenError};
