//! Worker execution reports (seed 003).
