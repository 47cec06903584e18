//! Wire types of PROTOCOL.md, one module per message family.

pub mod hosts;
pub mod leader;
pub mod lease;
pub mod region;
pub mod stats;
pub mod telemetry;
pub mod worker;
