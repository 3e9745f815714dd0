//! Decoders treat input as hostile: random, truncated and mutated bytes give
//! an error or a value, never a panic, a hang or a huge allocation.

use apache_avro::types::Value;
use proptest::prelude::*;
use schema_registry::*;

const RICH: &str = r#"{"type":"record","name":"R","fields":[
  {"name":"a","type":"int"},{"name":"b","type":["null","string","long"]},
  {"name":"c","type":{"type":"array","items":"null"}},
  {"name":"d","type":{"type":"map","values":{"type":"fixed","name":"F","size":3}}},
  {"name":"e","type":{"type":"enum","name":"E","symbols":["X","Y"]}},
  {"name":"f","type":"bytes"},{"name":"g","type":"double"},{"name":"h","type":"boolean"},
  {"name":"next","type":["null","R"]}]}"#;
const READER: &str = r#"{"type":"record","name":"R","fields":[
  {"name":"next","type":["null","R"]},{"name":"a","type":"double"},{"name":"b","type":["null","string","long","float"]},
  {"name":"d","type":{"type":"map","values":{"type":"fixed","name":"F","size":3}}},
  {"name":"e","type":{"type":"enum","name":"E","symbols":["Y","X","Z"]}},
  {"name":"f","type":"string"},{"name":"z","type":{"type":"array","items":"int"},"default":[1,2]}]}"#;

/// Incompatible with RICH (a union branch, array items, enum symbols and a
/// record field it cannot read): resolved datum by datum.
const PARTIAL: &str = r#"{"type":"record","name":"R","fields":[
  {"name":"b","type":["null","long"]},{"name":"c","type":{"type":"array","items":"int"}},
  {"name":"e","type":{"type":"enum","name":"E","symbols":["Y"]}},
  {"name":"g","type":"int"},{"name":"next","type":["null","R"]}]}"#;

fn schemas() -> (AvroSchema, AvroSchema, Resolver) {
    let w = AvroSchema::parse(RICH).unwrap();
    let r = AvroSchema::parse(READER).unwrap();
    let res = Resolver::compile(&w, &r).unwrap();
    (w, r, res)
}

fn sample() -> Value {
    Value::Record(vec![
        ("a".into(), Value::Int(-7)),
        (
            "b".into(),
            Value::Union(1, Box::new(Value::String("hé".into()))),
        ),
        ("c".into(), Value::Array(vec![Value::Null, Value::Null])),
        (
            "d".into(),
            Value::Map([("k".to_string(), Value::Fixed(3, vec![1, 2, 3]))].into()),
        ),
        ("e".into(), Value::Enum(1, "Y".into())),
        ("f".into(), Value::Bytes(b"ok".to_vec())),
        ("g".into(), Value::Double(1.5)),
        ("h".into(), Value::Boolean(true)),
        ("next".into(), Value::Union(0, Box::new(Value::Null))),
    ])
}

fn all_decoders(w: &AvroSchema, res: &Resolver, bytes: &[u8]) {
    let _ = decode_value(w, bytes);
    let _ = res.resolve_value(bytes);
    let mut out = Vec::new();
    let before = out.len();
    if res.resolve_bytes(bytes, &mut out).is_err() {
        assert_eq!(
            out.len(),
            before,
            "a failed resolve_bytes leaves the output untouched"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let (w, _, res) = schemas();
        all_decoders(&w, &res, &bytes);
    }

    /// A per-datum plan full of error ops over hostile bytes: errors, never panics.
    #[test]
    fn per_datum_plans_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..256),
        pos in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let w = AvroSchema::parse(RICH).unwrap();
        let res = Resolver::compile_per_datum(&w, &AvroSchema::parse(PARTIAL).unwrap()).unwrap();
        all_decoders(&w, &res, &bytes);
        let mut valid = encode_value(&w, &sample()).unwrap();
        let i = pos.index(valid.len());
        valid[i] = byte;
        all_decoders(&w, &res, &valid);
    }

    #[test]
    fn mutated_valid_datums_never_panic(pos in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<prop::sample::Index>()) {
        let (w, _, res) = schemas();
        let mut bytes = encode_value(&w, &sample()).unwrap();
        let i = pos.index(bytes.len());
        bytes[i] = byte;
        all_decoders(&w, &res, &bytes);
        let c = cut.index(bytes.len());
        all_decoders(&w, &res, &bytes[..c]);
    }

    #[test]
    fn resolve_bytes_agrees_with_resolve_value(a in any::<i32>(), s in ".{0,20}", n in 0usize..5, g in any::<f64>()) {
        let (w, r, res) = schemas();
        let mut v = sample();
        if let Value::Record(f) = &mut v {
            f[0].1 = Value::Int(a);
            f[1].1 = Value::Union(1, Box::new(Value::String(s)));
            f[2].1 = Value::Array(vec![Value::Null; n]);
            f[6].1 = Value::Double(g);
        }
        let bytes = encode_value(&w, &v).unwrap();
        prop_assert_eq!(decode_value(&w, &bytes).unwrap(), v);
        let value = res.resolve_value(&bytes).unwrap();
        let mut out = Vec::new();
        prop_assert_eq!(res.resolve_bytes(&bytes, &mut out).unwrap(), bytes.len());
        let again = decode_value(&r, &out).unwrap();
        // NaN != NaN: compare the encodings instead of values.
        prop_assert_eq!(encode_value(&r, &again).unwrap(), encode_value(&r, &value).unwrap());
    }
}

#[test]
fn hostile_lengths_are_refused_without_allocating() {
    let s = AvroSchema::parse(r#"{"type":"array","items":"null"}"#).unwrap();
    // Block of 2^62 nulls: bounded, refused.
    let mut huge = vec![0x80u8, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01];
    huge.push(0);
    assert!(matches!(
        decode_value(&s, &huge),
        Err(DecodeError::TooManyItems { .. })
    ));
    let b = AvroSchema::parse(r#""bytes""#).unwrap();
    // Length 2^40 with 1 byte of payload.
    assert!(matches!(
        decode_value(&b, &[0x80, 0x80, 0x80, 0x80, 0x80, 0x40, 1]),
        Err(DecodeError::LengthTooLarge { .. })
    ));
    assert!(matches!(
        decode_value(&b, &[3]),
        Err(DecodeError::NegativeLength { .. })
    ));
    let l = AvroSchema::parse(r#""long""#).unwrap();
    assert!(matches!(
        decode_value(&l, &[0xff; 11]),
        Err(DecodeError::BadVarint { .. })
    ));
    let i = AvroSchema::parse(r#""int""#).unwrap();
    assert!(matches!(
        decode_value(&i, &[0x80, 0x80, 0x80, 0x80, 0x20]),
        Err(DecodeError::IntOutOfRange { .. })
    ));
}

#[test]
fn deep_recursion_is_bounded() {
    let s = AvroSchema::parse(
        r#"{"type":"record","name":"L","fields":[{"name":"n","type":["null","L"]}]}"#,
    )
    .unwrap();
    let deep = vec![2u8; 100_000]; // branch 1 forever
    assert!(matches!(
        decode_value(&s, &deep),
        Err(DecodeError::TooDeep { .. })
    ));
    let mut out = Vec::new();
    let res = Resolver::compile(&s, &s).unwrap();
    assert!(res.resolve_bytes(&deep, &mut out).is_err());
    assert!(out.is_empty());
}
