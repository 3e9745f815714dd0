use apache_avro::types::Value;
use schema_registry::*;

const V1: &str = r#"{"type":"record","name":"Impression","namespace":"streamstate","fields":[
 {"name":"impression_id","type":"long"},{"name":"profile_id","type":"long"},{"name":"title_id","type":"long"},
 {"name":"ts_ms","type":"long"},{"name":"row","type":"int"},{"name":"rank","type":"int"},{"name":"device","type":"string"}]}"#;
const V2: &str = r#"{"type":"record","name":"Impression","namespace":"streamstate","fields":[
 {"name":"impression_id","type":"long"},{"name":"profile_id","type":"long"},{"name":"title_id","type":"long"},
 {"name":"ts_ms","type":"long"},{"name":"row","type":"long"},{"name":"rank","type":"int"},{"name":"device","type":"string"},
 {"name":"country","type":"string","default":"unknown"}]}"#;

fn impression(i: i64) -> Value {
    Value::Record(vec![
        ("impression_id".into(), Value::Long(i)),
        ("profile_id".into(), Value::Long(i * 7)),
        ("title_id".into(), Value::Long(i * 13)),
        ("ts_ms".into(), Value::Long(1_700_000_000_000 + i)),
        ("row".into(), Value::Int(3)),
        ("rank".into(), Value::Int(-2)),
        ("device".into(), Value::String("tv".into())),
    ])
}

#[test]
fn v1_to_v2_resolves_to_value_and_bytes() {
    let w = AvroSchema::parse(V1).unwrap();
    let r = AvroSchema::parse(V2).unwrap();
    let bytes = encode_value(&w, &impression(42)).unwrap();
    assert_eq!(decode_value(&w, &bytes).unwrap(), impression(42));
    let res = Resolver::compile(&w, &r).unwrap();
    assert!(!res.is_identity());
    let v = res.resolve_value(&bytes).unwrap();
    let Value::Record(fields) = &v else { panic!() };
    assert_eq!(fields[4], ("row".to_string(), Value::Long(3)));
    assert_eq!(
        fields[7],
        ("country".to_string(), Value::String("unknown".into()))
    );
    let mut out = Vec::new();
    assert_eq!(res.resolve_bytes(&bytes, &mut out).unwrap(), bytes.len());
    assert_eq!(decode_value(&r, &out).unwrap(), v);
    // apache-avro agrees on this simple case.
    #[allow(deprecated)]
    let theirs = apache_avro::from_avro_datum(w.inner(), &mut &bytes[..], Some(r.inner())).unwrap();
    assert_eq!(theirs, v);
}

#[test]
fn incompatible_pair_refuses_to_compile_with_reasons() {
    let w = AvroSchema::parse(V2).unwrap();
    let r = AvroSchema::parse(V1).unwrap();
    let err = Resolver::compile(&w, &r).unwrap_err();
    let ResolveError::Incompatible(found) = err else {
        panic!()
    };
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].kind, IncompatibilityKind::TypeMismatch);
    assert_eq!(found[0].path, "/fields/4/type");
    assert_eq!(
        found[0].message,
        "reader type: INT not compatible with writer type: LONG"
    );
}

#[test]
fn identity_and_fingerprint() {
    let a = AvroSchema::parse(V1).unwrap();
    assert!(Resolver::compile(&a, &a).unwrap().is_identity());
    assert_eq!(a.canonical_form(), a.inner().canonical_form());
    let null = AvroSchema::parse(r#""null""#).unwrap();
    assert_eq!(null.fingerprint() as i64, 7195948357588979594);
}
