//! Serializes whole-valued floats as JSON integers (`2700`, not `2700.0`),
//! so fields the seeds show as integers keep that shape on output.

use serde::Serializer;

/// Largest integer an f64 holds exactly.
const EXACT: f64 = 9_007_199_254_740_992.0;

/// `serialize_with` of an optional float: whole values as integers.
pub(crate) fn opt<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(x) if x.fract() == 0.0 && x.abs() <= EXACT => s.serialize_i64(*x as i64),
        Some(x) => s.serialize_f64(*x),
        None => s.serialize_none(),
    }
}
