//! Keys as people type and read them, per a state's key format.

use state_core::keys::{decode_ordered_i64, ordered_i64};
use state_core::KeyFormat;

#[derive(Debug, thiserror::Error)]
#[error("key '{input}' is not a valid {format} key: {reason}")]
pub struct KeyParseError {
    pub input: String,
    pub format: &'static str,
    pub reason: String,
}

fn format_name(f: KeyFormat) -> &'static str {
    match f {
        KeyFormat::Bytes => "bytes (hex)",
        KeyFormat::Utf8 => "utf8",
        KeyFormat::I64 => "i64",
        KeyFormat::I64Pair => "i64_pair (a,b)",
    }
}

pub fn parse_key(format: KeyFormat, input: &str) -> Result<Vec<u8>, KeyParseError> {
    let err = |reason: String| KeyParseError {
        input: input.to_string(),
        format: format_name(format),
        reason,
    };
    let int = |s: &str| s.trim().parse::<i64>().map_err(|e| err(e.to_string()));
    match format {
        KeyFormat::Utf8 => Ok(input.as_bytes().to_vec()),
        KeyFormat::I64 => Ok(ordered_i64(int(input)?).to_vec()),
        KeyFormat::I64Pair => {
            let (a, b) = input
                .split_once(',')
                .ok_or_else(|| err("expected two numbers `a,b`".into()))?;
            let mut out = ordered_i64(int(a)?).to_vec();
            out.extend_from_slice(&ordered_i64(int(b)?));
            Ok(out)
        }
        KeyFormat::Bytes => {
            let s = input.trim_start_matches("0x");
            if !s.len().is_multiple_of(2) {
                return Err(err("odd number of hex digits".into()));
            }
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|e| err(e.to_string())))
                .collect()
        }
    }
}

pub fn render_key(format: KeyFormat, key: &[u8]) -> serde_json::Value {
    use serde_json::json;
    match format {
        KeyFormat::Utf8 => match std::str::from_utf8(key) {
            Ok(s) => json!(s),
            Err(_) => json!(state_core::savepoint::hex(key)),
        },
        KeyFormat::I64 if key.len() == 8 => json!(decode_ordered_i64(key)),
        KeyFormat::I64Pair if key.len() == 16 => {
            json!([decode_ordered_i64(&key[..8]), decode_ordered_i64(&key[8..])])
        }
        _ => json!(state_core::savepoint::hex(key)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn pair_round_trip(a in any::<i64>(), b in any::<i64>()) {
            let k = parse_key(KeyFormat::I64Pair, &format!("{a},{b}")).unwrap();
            prop_assert_eq!(render_key(KeyFormat::I64Pair, &k), serde_json::json!([a, b]));
        }

        #[test]
        fn hex_round_trip(b in proptest::collection::vec(any::<u8>(), 0..16)) {
            let s = state_core::savepoint::hex(&b);
            prop_assert_eq!(parse_key(KeyFormat::Bytes, &s).unwrap(), b);
        }
    }

    #[test]
    fn bad_keys_are_named() {
        let e = parse_key(KeyFormat::I64, "x1").unwrap_err();
        assert!(e.to_string().contains("'x1'"), "{e}");
        assert!(parse_key(KeyFormat::Bytes, "abc").is_err());
    }
}
