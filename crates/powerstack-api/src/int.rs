//! JSON integers as JSON Schema counts them: `3` and `3.0` are both the integer 3, so a request
//! valid for an OpenAPI document's `integer` is taken whichever way the number is written. Large
//! integers keep every digit (no detour through `f64`); a number with a fraction, below zero or
//! beyond the type is refused with a message saying what is expected.

use std::fmt;

use serde::Deserialize;
use serde::de::{Deserializer, Error, SeqAccess, Visitor};

/// The largest integer `f64` holds, with every integer below it: `2^64` is the first beyond
/// `u64`.
const U64_END: f64 = 18_446_744_073_709_551_616.0;

struct U64Visitor;

impl Visitor<'_> for U64Visitor {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an integer from 0 to 18446744073709551615")
    }

    fn visit_u64<E: Error>(self, v: u64) -> Result<u64, E> {
        Ok(v)
    }

    fn visit_i64<E: Error>(self, v: i64) -> Result<u64, E> {
        u64::try_from(v).map_err(|_| E::custom(format!("{v}: {}", Self.expecting_text())))
    }

    fn visit_f64<E: Error>(self, v: f64) -> Result<u64, E> {
        if v.fract() == 0.0 && (0.0..U64_END).contains(&v) {
            // Integral and in range: the conversion is exact.
            Ok(v as u64)
        } else {
            Err(E::custom(format!("{v}: {}", Self.expecting_text())))
        }
    }
}

impl U64Visitor {
    fn expecting_text(&self) -> &'static str {
        "expected an integer from 0 to 18446744073709551615"
    }
}

/// A `u64` written `3` or `3.0`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Int(pub(crate) u64);

impl<'de> Deserialize<'de> for Int {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Int, D::Error> {
        d.deserialize_u64(U64Visitor).map(Int)
    }
}

/// `#[serde(deserialize_with)]` of a `u64`.
pub(crate) fn u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    d.deserialize_u64(U64Visitor)
}

/// `#[serde(deserialize_with)]` of a `u32`.
pub(crate) fn u32<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let v = d.deserialize_u64(U64Visitor)?;
    ::core::primitive::u32::try_from(v).map_err(|_| {
        D::Error::custom(format!(
            "{v}: expected an integer from 0 to {}",
            ::core::primitive::u32::MAX
        ))
    })
}

/// `#[serde(deserialize_with)]` of an optional `u32`.
pub(crate) fn opt_u32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    #[derive(Deserialize)]
    struct Wrap(#[serde(deserialize_with = "u32")] ::core::primitive::u32);
    Ok(Option::<Wrap>::deserialize(d)?.map(|w| w.0))
}

struct I32Visitor;

impl Visitor<'_> for I32Visitor {
    type Value = i32;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an integer from -2147483648 to 2147483647")
    }

    fn visit_u64<E: Error>(self, v: u64) -> Result<i32, E> {
        i32::try_from(v).map_err(|_| {
            E::custom(format!("{v}: expected an integer from -2147483648 to 2147483647"))
        })
    }

    fn visit_i64<E: Error>(self, v: i64) -> Result<i32, E> {
        i32::try_from(v).map_err(|_| {
            E::custom(format!("{v}: expected an integer from -2147483648 to 2147483647"))
        })
    }

    fn visit_f64<E: Error>(self, v: f64) -> Result<i32, E> {
        if v.fract() == 0.0 && (f64::from(i32::MIN)..=f64::from(i32::MAX)).contains(&v) {
            // Integral and in range: the conversion is exact.
            Ok(v as i32)
        } else {
            Err(E::custom(format!("{v}: expected an integer from -2147483648 to 2147483647")))
        }
    }
}

/// `#[serde(deserialize_with)]` of an optional `i32` (written `-3` or `-3.0`).
pub(crate) fn opt_i32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i32>, D::Error> {
    struct Wrap(i32);
    impl<'de> Deserialize<'de> for Wrap {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Wrap, D::Error> {
            d.deserialize_any(I32Visitor).map(Wrap)
        }
    }
    Ok(Option::<Wrap>::deserialize(d)?.map(|w| w.0))
}

/// `#[serde(deserialize_with)]` of a list of `u32` (each integer written `3` or `3.0`).
pub(crate) fn u32s<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Vec<::core::primitive::u32>, D::Error> {
    #[derive(Deserialize)]
    struct Wrap(#[serde(deserialize_with = "u32")] ::core::primitive::u32);
    Ok(Vec::<Wrap>::deserialize(d)?.into_iter().map(|w| w.0).collect())
}

/// `#[serde(deserialize_with)]` of an optional JSON object (anything else is refused).
pub(crate) fn opt_object<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<serde_json::Value>, D::Error> {
    match Option::<serde_json::Value>::deserialize(d)? {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v @ serde_json::Value::Object(_)) => Ok(Some(v)),
        Some(_) => Err(D::Error::custom("expected a JSON object")),
    }
}

/// `#[serde(deserialize_with)]` of rows of `u64` (a batch's samples), each number read as it
/// comes, without a copy.
pub(crate) fn rows<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u64>>, D::Error> {
    struct Row(Vec<u64>);
    impl<'de> Deserialize<'de> for Row {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Row, D::Error> {
            struct RowVisitor;
            impl<'de> Visitor<'de> for RowVisitor {
                type Value = Vec<u64>;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("an array of integers")
                }
                fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u64>, A::Error> {
                    let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
                    while let Some(Int(v)) = seq.next_element()? {
                        out.push(v);
                    }
                    Ok(out)
                }
            }
            d.deserialize_seq(RowVisitor).map(Row)
        }
    }
    struct RowsVisitor;
    impl<'de> Visitor<'de> for RowsVisitor {
        type Value = Vec<Vec<u64>>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an array of arrays of integers")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Vec<u64>>, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
            while let Some(Row(r)) = seq.next_element()? {
                out.push(r);
            }
            Ok(out)
        }
    }
    d.deserialize_seq(RowsVisitor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Debug)]
    struct T {
        #[serde(deserialize_with = "u64")]
        a: u64,
        #[serde(default, deserialize_with = "opt_u32")]
        b: Option<::core::primitive::u32>,
        #[serde(deserialize_with = "rows")]
        r: Vec<Vec<u64>>,
    }

    fn t(s: &str) -> Result<T, String> {
        serde_json::from_str(s).map_err(|e| e.to_string())
    }

    #[test]
    fn integers_are_taken_written_either_way_and_keep_every_digit() {
        let v = t(r#"{"a": 18446744073709551615, "b": 3.0, "r": [[1, 2.0], [9007199254740993]]}"#)
            .unwrap();
        assert_eq!(v.a, u64::MAX);
        assert_eq!(v.b, Some(3));
        assert_eq!(v.r, vec![vec![1, 2], vec![9_007_199_254_740_993]]);
        assert_eq!(t(r#"{"a": 5.0, "r": []}"#).unwrap().b, None);
        for bad in [
            r#"{"a": 1.5, "r": []}"#,
            r#"{"a": -1, "r": []}"#,
            r#"{"a": 1e20, "r": []}"#,
            r#"{"a": 1, "b": 4294967296, "r": []}"#,
            r#"{"a": 1, "r": [[0.5]]}"#,
            r#"{"a": 1, "r": [1]}"#,
        ] {
            let e = t(bad).unwrap_err();
            assert!(e.contains("expected"), "{bad}: {e}");
        }
    }
}
