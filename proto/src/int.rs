//! Integer fields of network messages that also take an integral JSON
//! float. Some producers (Python's `json`, JavaScript) write a whole number
//! as `86400.0`; serde's own integer decoding refuses that, and the whole
//! message would be dropped as bad JSON. With
//! `#[serde(deserialize_with = "lull_proto::int::de")]` (or `int::opt` for
//! an `Option`), an integer field takes `86400` and `86400.0` alike.
//!
//! Still refused, as a typed decoding error: a fractional value (`1.5`), a
//! value outside the field's type (`-1` for a `u64`, `300` for a `u8`), a
//! float beyond 2^53 (it may not be the integer the sender meant), and
//! anything that is not a number (`"86400"`, `"NaN"`, `null` for a
//! required field).

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, Unexpected, Visitor};
use serde::Deserialize;

/// Largest magnitude of a float that is taken as an integer: every integer
/// up to 2^53 is exact in an f64, above it a float may be a rounded value.
pub const MAX_EXACT_FLOAT: f64 = 9_007_199_254_740_992.0;

/// An integer type that [`de`] and [`opt`] can decode.
pub trait WireInt: Sized + Copy {
    /// The type's name, for error messages.
    const NAME: &'static str;
    /// The value as this type, if it fits.
    fn from_i128(v: i128) -> Option<Self>;
}

macro_rules! wire_int {
    ($($t:ty),*) => {$(
        impl WireInt for $t {
            const NAME: &'static str = stringify!($t);
            fn from_i128(v: i128) -> Option<Self> {
                <$t>::try_from(v).ok()
            }
        }
    )*};
}

wire_int!(u8, u16, u32, u64, usize, i32, i64);

struct IntVisitor<T>(PhantomData<T>);

impl<'de, T: WireInt> Visitor<'de> for IntVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "an integer that fits {} (a float is taken only if it has no fractional part)",
            T::NAME
        )
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        T::from_i128(i128::from(v)).ok_or_else(|| E::invalid_value(Unexpected::Unsigned(v), &self))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        T::from_i128(i128::from(v)).ok_or_else(|| E::invalid_value(Unexpected::Signed(v), &self))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
        let whole = v.is_finite() && v.fract() == 0.0 && v.abs() <= MAX_EXACT_FLOAT;
        whole
            .then(|| T::from_i128(v as i128))
            .flatten()
            .ok_or_else(|| E::invalid_value(Unexpected::Float(v), &self))
    }
}

/// An integer decoded by [`IntVisitor`], for use inside other types.
struct Int<T>(T);

impl<'de, T: WireInt> Deserialize<'de> for Int<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(IntVisitor(PhantomData)).map(Int)
    }
}

/// `deserialize_with` of an integer field: an integer, or an integral float.
pub fn de<'de, D: Deserializer<'de>, T: WireInt>(d: D) -> Result<T, D::Error> {
    Int::<T>::deserialize(d).map(|i| i.0)
}

/// `deserialize_with` of an optional integer field (`null` is `None`);
/// pair it with `#[serde(default)]` so that an absent field is `None` too.
pub fn opt<'de, D: Deserializer<'de>, T: WireInt>(d: D) -> Result<Option<T>, D::Error> {
    Option::<Int<T>>::deserialize(d).map(|o| o.map(|i| i.0))
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    struct T {
        #[serde(deserialize_with = "super::de")]
        n: u64,
        #[serde(default, deserialize_with = "super::opt")]
        o: Option<i64>,
        #[serde(default, deserialize_with = "super::opt")]
        small: Option<u8>,
    }

    fn parse(s: &str) -> Result<T, serde_json::Error> {
        serde_json::from_str(s)
    }

    #[test]
    fn integers_and_integral_floats_are_taken() {
        let t = parse(r#"{"n": 86400.0, "o": -3.0, "small": 255}"#).unwrap();
        assert_eq!(
            t,
            T {
                n: 86400,
                o: Some(-3),
                small: Some(255)
            }
        );
        let t = parse(r#"{"n": 18446744073709551615}"#).unwrap();
        assert_eq!((t.n, t.o, t.small), (u64::MAX, None, None));
        assert_eq!(parse(r#"{"n": 0, "o": null}"#).unwrap().o, None);
        assert_eq!(parse(r#"{"n": 1e3}"#).unwrap().n, 1000);
        assert_eq!(parse(r#"{"n": 9007199254740992.0}"#).unwrap().n, 1 << 53);
    }

    #[test]
    fn everything_else_is_a_typed_error() {
        for bad in [
            r#"{"n": 1.5}"#,
            r#"{"n": -1}"#,
            r#"{"n": -1.0}"#,
            r#"{"n": 1e300}"#,
            r#"{"n": 1.8446744073709552e19}"#,
            r#"{"n": 9007199254740994.0}"#,
            r#"{"n": "86400"}"#,
            r#"{"n": "NaN"}"#,
            r#"{"n": null}"#,
            r#"{"n": true}"#,
            r#"{"n": [1]}"#,
            r#"{}"#,
            r#"{"n": 1, "small": 256}"#,
            r#"{"n": 1, "small": 255.5}"#,
            r#"{"n": 1, "o": 9.3e18}"#,
            r#"{"n": 1, "o": "1"}"#,
        ] {
            let e = parse(bad).expect_err(bad);
            assert!(e.is_data() || e.is_syntax(), "{bad}: {e}");
        }
        let e = parse(r#"{"n": 1.5}"#).unwrap_err().to_string();
        assert!(e.contains("fractional"), "{e}");
    }

    #[test]
    fn works_behind_a_buffering_deserializer() {
        // Untagged enums and `flatten` buffer the value first.
        #[derive(Debug, Deserialize)]
        #[serde(untagged)]
        enum U {
            A(T),
        }
        let U::A(t) = serde_json::from_str::<U>(r#"{"n": 7.0, "o": 2.0}"#).unwrap();
        assert_eq!((t.n, t.o), (7, Some(2)));
    }
}
