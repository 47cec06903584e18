//! `lull-common`: the wire contract of Lull (PROTOCOL.md) as Rust types with
//! their validation, the subject names, shared configuration and connection
//! plumbing, and the client SDK used by addons, workers and `lullctl`.

#![warn(missing_docs)]

pub mod client;
pub mod config;
pub mod error;
pub mod msg;
pub mod nats;
pub mod runtime;
pub mod subjects;
pub mod validate;

pub use error::{ErrorCode, ErrorReply, ValidationError};
pub use subjects::Subjects;
pub use validate::{decode, Validate};
