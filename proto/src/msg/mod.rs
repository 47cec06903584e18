//! Wire types of docs/protocol.md, one module per message family.

pub mod decisions;
pub mod hosts;
pub mod leader;
pub mod lease;
pub mod page;
pub mod region;
pub mod stats;
pub mod telemetry;
pub mod worker;
