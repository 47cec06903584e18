//! `lull-proto`: Lull's wire contract as Rust types. Every message with its
//! validation (`msg`), the subject names (`subjects`), and the error reply
//! (`error`). No I/O happens here: the engine, the SDK and the binaries all
//! build on these types.

#![warn(missing_docs)]

pub mod error;
pub mod int;
pub mod msg;
pub mod subjects;
pub mod validate;

pub use error::{ErrorCode, ErrorReply, ValidationError};
pub use subjects::Subjects;
pub use validate::{decode, Validate};
