//! A JSON value that keeps object fields in the order they are built
//! (record fields in schema order), written without a serializer framework.

use std::cmp::Ordering;
use std::fmt::Write;

#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    pub fn obj(fields: Vec<(&str, Json)>) -> Json {
        Json::Obj(
            fields
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        )
    }

    pub fn str(s: impl Into<String>) -> Json {
        Json::Str(s.into())
    }

    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Obj(f) => f.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn write(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Json::Float(f) if f.is_finite() => {
                let _ = write!(out, "{f:?}");
            }
            // JSON has no NaN or infinity: Avro's JSON writes them as strings.
            Json::Float(f) => write_str(out, &f.to_string()),
            Json::Str(s) => write_str(out, s),
            Json::Arr(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    v.write(out);
                }
                out.push(']');
            }
            Json::Obj(fields) => {
                out.push('{');
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_str(out, k);
                    out.push(':');
                    v.write(out);
                }
                out.push('}');
            }
        }
    }

    pub fn to_line(&self) -> String {
        let mut s = String::new();
        self.write(&mut s);
        s
    }

    /// A total order used to sort map entries the way Flink's dump does
    /// (numbers numerically, strings lexicographically).
    pub fn total_cmp(&self, other: &Json) -> Ordering {
        match (self, other) {
            (Json::Int(a), Json::Int(b)) => a.cmp(b),
            (Json::Float(a), Json::Float(b)) => a.total_cmp(b),
            (Json::Int(a), Json::Float(b)) => (*a as f64).total_cmp(b),
            (Json::Float(a), Json::Int(b)) => a.total_cmp(&(*b as f64)),
            (Json::Str(a), Json::Str(b)) => a.cmp(b),
            _ => self.to_line().cmp(&other.to_line()),
        }
    }
}

fn write_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_escaped_and_ordered() {
        let j = Json::obj(vec![
            ("b", Json::str("q\"\n\u{1}")),
            ("a", Json::Arr(vec![Json::Int(-1), Json::Null])),
        ]);
        assert_eq!(j.to_line(), r#"{"b":"q\"\n\u0001","a":[-1,null]}"#);
    }
}
