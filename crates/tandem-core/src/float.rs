//! Metric values are IEEE doubles and MLflow allows NaN and ±infinity. JSON has no spelling
//! for them, so, like protobuf's JSON mapping, they travel as the strings "NaN", "Infinity"
//! and "-Infinity". Finite values round-trip exactly.

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default)]
pub struct F64(pub f64);

impl F64 {
    /// Parses protobuf-JSON's spellings of a double: a number or one of the special strings
    /// (protobuf also accepts numeric strings).
    pub fn from_json(v: &serde_json::Value) -> Option<F64> {
        match v {
            serde_json::Value::Number(n) => n.as_f64().map(F64),
            serde_json::Value::String(s) => match s.as_str() {
                "NaN" | "nan" => Some(F64(f64::NAN)),
                "Infinity" | "inf" => Some(F64(f64::INFINITY)),
                "-Infinity" | "-inf" => Some(F64(f64::NEG_INFINITY)),
                other => other
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .map(F64),
            },
            _ => None,
        }
    }

    pub fn to_json(self) -> serde_json::Value {
        let f = self.0;
        if f.is_nan() {
            "NaN".into()
        } else if f == f64::INFINITY {
            "Infinity".into()
        } else if f == f64::NEG_INFINITY {
            "-Infinity".into()
        } else {
            serde_json::Number::from_f64(f)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null)
        }
    }

    /// Bitwise identity, so NaN equals NaN: what "the same metric point" means.
    pub fn same(self, other: F64) -> bool {
        self.0.to_bits() == other.0.to_bits() || (self.0.is_nan() && other.0.is_nan())
    }
}

impl Serialize for F64 {
    /// The same as [`F64::to_json`], written straight to the serializer.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let f = self.0;
        if f.is_nan() {
            s.serialize_str("NaN")
        } else if f == f64::INFINITY {
            s.serialize_str("Infinity")
        } else if f == f64::NEG_INFINITY {
            s.serialize_str("-Infinity")
        } else {
            s.serialize_f64(f)
        }
    }
}

impl<'de> Deserialize<'de> for F64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<F64, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        F64::from_json(&v).ok_or_else(|| de::Error::custom(format!("not a double: {v}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn special_values_round_trip_through_json() {
        for f in [
            0.1,
            -0.0,
            1e308,
            f64::MIN_POSITIVE,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ] {
            let s = serde_json::to_string(&F64(f)).unwrap();
            let back: F64 = serde_json::from_str(&s).unwrap();
            assert!(back.same(F64(f)), "{f} -> {s}");
        }
    }
}
