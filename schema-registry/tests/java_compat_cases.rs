//! Reader/writer cases after Java Avro 1.12's TestSchemaCompatibility and
//! TestReadingWritingDataInEvolvedSchemas: exact kinds, paths and messages.

use apache_avro::types::Value;
use schema_registry::IncompatibilityKind::*;
use schema_registry::*;

fn s(json: &str) -> AvroSchema {
    AvroSchema::parse(json).unwrap_or_else(|e| panic!("{json}: {e}"))
}

const INT: &str = r#""int""#;
const LONG: &str = r#""long""#;
const FLOAT: &str = r#""float""#;
const DOUBLE: &str = r#""double""#;
const STRING: &str = r#""string""#;
const BYTES: &str = r#""bytes""#;
const BOOLEAN: &str = r#""boolean""#;
const NULL: &str = r#""null""#;
const ENUM1_AB: &str = r#"{"type":"enum","name":"Enum1","symbols":["A","B"]}"#;
const ENUM1_ABC: &str = r#"{"type":"enum","name":"Enum1","symbols":["A","B","C"]}"#;
const ENUM1_AB_DEFAULT: &str =
    r#"{"type":"enum","name":"Enum1","symbols":["A","B"],"default":"A"}"#;
const ENUM2_AB: &str = r#"{"type":"enum","name":"Enum2","symbols":["A","B"]}"#;
const FIXED_4: &str = r#"{"type":"fixed","name":"Fixed","size":4}"#;
const FIXED_8: &str = r#"{"type":"fixed","name":"Fixed","size":8}"#;
const A_INT: &str = r#"{"type":"record","name":"Record1","fields":[{"name":"a","type":"int"}]}"#;
const A_INT_B_INT: &str = r#"{"type":"record","name":"Record1","fields":[{"name":"a","type":"int"},{"name":"b","type":"int"}]}"#;
const A_INT_B_DINT: &str = r#"{"type":"record","name":"Record1","fields":[{"name":"a","type":"int"},{"name":"b","type":"int","default":0}]}"#;
const A_LONG: &str = r#"{"type":"record","name":"Record1","fields":[{"name":"a","type":"long"}]}"#;
const EMPTY_RECORD2: &str = r#"{"type":"record","name":"Record2","fields":[]}"#;
const INT_ARRAY: &str = r#"{"type":"array","items":"int"}"#;
const LONG_ARRAY: &str = r#"{"type":"array","items":"long"}"#;
const INT_MAP: &str = r#"{"type":"map","values":"int"}"#;
const LONG_MAP: &str = r#"{"type":"map","values":"long"}"#;
const INT_UNION: &str = r#"["int"]"#;
const INT_STRING_UNION: &str = r#"["int","string"]"#;
const NULL_INT_UNION: &str = r#"["null","int"]"#;
const INT_LONG_FLOAT_DOUBLE_UNION: &str = r#"["int","long","float","double"]"#;
const LIST: &str = r#"{"type":"record","name":"List","fields":[{"name":"head","type":"int"},{"name":"tail","type":["null","List"]}]}"#;
const LONG_LIST: &str = r#"{"type":"record","name":"List","fields":[{"name":"head","type":"long"},{"name":"tail","type":["null","List"]}]}"#;

#[test]
fn compatible_pairs() {
    let pairs: &[(&str, &str)] = &[
        (BOOLEAN, BOOLEAN),
        (INT, INT),
        (LONG, INT),
        (LONG, LONG),
        (FLOAT, INT),
        (FLOAT, LONG),
        (DOUBLE, LONG),
        (DOUBLE, INT),
        (DOUBLE, FLOAT),
        (STRING, STRING),
        (BYTES, BYTES),
        (STRING, BYTES),
        (BYTES, STRING),
        (INT_ARRAY, INT_ARRAY),
        (LONG_ARRAY, INT_ARRAY),
        (INT_MAP, INT_MAP),
        (LONG_MAP, INT_MAP),
        (ENUM1_AB, ENUM1_AB),
        (ENUM1_ABC, ENUM1_AB),
        (ENUM1_AB_DEFAULT, ENUM1_ABC),
        (FIXED_4, FIXED_4),
        (INT_UNION, INT_UNION),
        (INT_STRING_UNION, INT_UNION),
        (NULL_INT_UNION, INT),
        (INT, INT_UNION),
        (LONG, INT_UNION),
        (INT_LONG_FLOAT_DOUBLE_UNION, INT),
        (DOUBLE, INT_LONG_FLOAT_DOUBLE_UNION),
        (EMPTY_RECORD2, EMPTY_RECORD2),
        (A_INT, A_INT_B_INT),
        (A_INT_B_DINT, A_INT),
        (A_LONG, A_INT),
        (LIST, LIST),
        (LONG_LIST, LIST),
        // Java ignores logical types: decimal precision and scale do not matter.
        (
            r#"{"type":"bytes","logicalType":"decimal","precision":4,"scale":2}"#,
            r#"{"type":"bytes","logicalType":"decimal","precision":12,"scale":6}"#,
        ),
        // Reader aliases: record name and field name.
        (
            r#"{"type":"record","name":"New","aliases":["Old"],"fields":[{"name":"x","aliases":["y"],"type":"int"}]}"#,
            r#"{"type":"record","name":"Old","fields":[{"name":"y","type":"int"}]}"#,
        ),
        (
            r#"{"type":"enum","name":"E2","aliases":["ns.E1"],"symbols":["A"]}"#,
            r#"{"type":"enum","name":"E1","namespace":"ns","symbols":["A"]}"#,
        ),
        // Names compare unqualified, as Java's schemaNameEquals does.
        (
            r#"{"type":"fixed","name":"a.F","size":2}"#,
            r#"{"type":"fixed","name":"b.F","size":2}"#,
        ),
    ];
    for (reader, writer) in pairs {
        let found = check_compatibility(&s(reader), &s(writer));
        assert!(
            found.is_empty(),
            "reader {reader} / writer {writer}: {found:?}"
        );
        assert!(Resolver::compile(&s(writer), &s(reader)).is_ok());
    }
}

#[test]
fn incompatible_pairs_with_kind_path_message() {
    let cases: &[(&str, &str, IncompatibilityKind, &str, &str)] = &[
        (
            INT,
            LONG,
            TypeMismatch,
            "/",
            "reader type: INT not compatible with writer type: LONG",
        ),
        (
            FLOAT,
            DOUBLE,
            TypeMismatch,
            "/",
            "reader type: FLOAT not compatible with writer type: DOUBLE",
        ),
        (
            INT,
            FLOAT,
            TypeMismatch,
            "/",
            "reader type: INT not compatible with writer type: FLOAT",
        ),
        (
            LONG,
            FLOAT,
            TypeMismatch,
            "/",
            "reader type: LONG not compatible with writer type: FLOAT",
        ),
        (
            NULL,
            INT,
            TypeMismatch,
            "/",
            "reader type: NULL not compatible with writer type: INT",
        ),
        (
            INT_ARRAY,
            LONG_ARRAY,
            TypeMismatch,
            "/items",
            "reader type: INT not compatible with writer type: LONG",
        ),
        (
            INT_MAP,
            LONG_MAP,
            TypeMismatch,
            "/values",
            "reader type: INT not compatible with writer type: LONG",
        ),
        (ENUM1_AB, ENUM1_ABC, MissingEnumSymbols, "/symbols", "[C]"),
        (ENUM1_AB, ENUM2_AB, NameMismatch, "/name", "expected: Enum2"),
        (
            FIXED_4,
            FIXED_8,
            FixedSizeMismatch,
            "/size",
            "expected: 8, found: 4",
        ),
        (
            A_INT_B_INT,
            A_INT,
            ReaderFieldMissingDefaultValue,
            "/fields/1",
            "b",
        ),
        (
            A_INT,
            A_LONG,
            TypeMismatch,
            "/fields/0/type",
            "reader type: INT not compatible with writer type: LONG",
        ),
        (
            INT_UNION,
            INT_STRING_UNION,
            MissingUnionBranch,
            "/1",
            "reader union lacking writer type: STRING",
        ),
        (
            NULL_INT_UNION,
            STRING,
            MissingUnionBranch,
            "/",
            "reader union lacking writer type: STRING",
        ),
        (
            INT,
            INT_STRING_UNION,
            TypeMismatch,
            "/",
            "reader type: INT not compatible with writer type: STRING",
        ),
        (
            LIST,
            LONG_LIST,
            TypeMismatch,
            "/fields/0/type",
            "reader type: INT not compatible with writer type: LONG",
        ),
        (
            A_INT,
            EMPTY_RECORD2,
            NameMismatch,
            "/name",
            "expected: Record2",
        ),
    ];
    for (reader, writer, kind, path, message) in cases {
        let found = check_compatibility(&s(reader), &s(writer));
        assert_eq!(
            found
                .first()
                .map(|i| (i.kind, i.path.as_str(), i.message.as_str())),
            Some((*kind, *path, *message)),
            "reader {reader} / writer {writer}: {found:?}"
        );
        assert!(matches!(
            Resolver::compile(&s(writer), &s(reader)),
            Err(ResolveError::Incompatible(_))
        ));
    }
}

#[test]
fn every_reason_is_reported_and_display_matches() {
    let reader = r#"{"type":"record","name":"R","fields":[
        {"name":"a","type":"int"},{"name":"b","type":"string"},
        {"name":"e","type":{"type":"enum","name":"E","symbols":["X"]}}]}"#;
    let writer = r#"{"type":"record","name":"R","fields":[
        {"name":"a","type":"long"},
        {"name":"e","type":{"type":"enum","name":"E","symbols":["X","Y","W"]}}]}"#;
    let found = check_compatibility(&s(reader), &s(writer));
    let shown: Vec<String> = found.iter().map(|i| i.to_string()).collect();
    assert_eq!(
        shown,
        [
            "TYPE_MISMATCH at /fields/0/type: reader type: INT not compatible with writer type: LONG",
            "READER_FIELD_MISSING_DEFAULT_VALUE at /fields/1: b",
            "MISSING_ENUM_SYMBOLS at /fields/2/type/symbols: [W, Y]",
        ]
    );
    assert_eq!(
        serde_json::to_value(&found[1]).unwrap(),
        serde_json::json!({"kind": "READER_FIELD_MISSING_DEFAULT_VALUE", "path": "/fields/1", "message": "b"})
    );
}

fn resolve(writer: &str, reader: &str, value: Value) -> Value {
    let (w, r) = (s(writer), s(reader));
    let bytes = encode_value(&w, &value).unwrap();
    let res = Resolver::compile(&w, &r).unwrap();
    let v = res.resolve_value(&bytes).unwrap();
    let mut out = Vec::new();
    res.resolve_bytes(&bytes, &mut out).unwrap();
    assert_eq!(
        decode_value(&r, &out).unwrap(),
        v,
        "bytes and value paths agree"
    );
    v
}

#[test]
fn evolved_data_reads_like_java() {
    assert_eq!(resolve(INT, LONG, Value::Int(-3)), Value::Long(-3));
    assert_eq!(resolve(INT, FLOAT, Value::Int(7)), Value::Float(7.0));
    assert_eq!(
        resolve(LONG, DOUBLE, Value::Long(1 << 40)),
        Value::Double((1u64 << 40) as f64)
    );
    assert_eq!(
        resolve(FLOAT, DOUBLE, Value::Float(1.5)),
        Value::Double(1.5)
    );
    assert_eq!(
        resolve(STRING, BYTES, Value::String("hé".into())),
        Value::Bytes("hé".as_bytes().to_vec())
    );
    assert_eq!(
        resolve(BYTES, STRING, Value::Bytes(b"ok".to_vec())),
        Value::String("ok".into())
    );
    // Writer non-union into reader union: exact type first, else promotion.
    assert_eq!(
        resolve(INT, r#"["null","long","int"]"#, Value::Int(4)),
        Value::Union(2, Box::new(Value::Int(4)))
    );
    assert_eq!(
        resolve(INT, r#"["null","double"]"#, Value::Int(4)),
        Value::Union(1, Box::new(Value::Double(4.0)))
    );
    // Writer union into reader non-union.
    assert_eq!(
        resolve(
            NULL_INT_UNION,
            r#"["null","long"]"#,
            Value::Union(1, Box::new(Value::Int(9)))
        ),
        Value::Union(1, Box::new(Value::Long(9)))
    );
    // Enum: reordered symbols, unknown symbol to the reader default.
    assert_eq!(
        resolve(
            ENUM1_ABC,
            r#"{"type":"enum","name":"Enum1","symbols":["B","A","Z"],"default":"Z"}"#,
            Value::Enum(2, "C".into())
        ),
        Value::Enum(2, "Z".into())
    );
    assert_eq!(
        resolve(
            ENUM1_AB,
            r#"{"type":"enum","name":"Enum1","symbols":["B","A"]}"#,
            Value::Enum(0, "A".into())
        ),
        Value::Enum(1, "A".into())
    );
    // Field alias, reordering, dropped writer field, defaults (bytes as code points, not UTF-8).
    let writer = r#"{"type":"record","name":"Old","fields":[{"name":"drop","type":{"type":"array","items":"string"}},
        {"name":"b","type":"int"},{"name":"old_a","type":"string"}]}"#;
    let reader = r#"{"type":"record","name":"New","aliases":["Old"],"fields":[{"name":"a","aliases":["old_a"],"type":"string"},
        {"name":"raw","type":"bytes","default":"\u00ff\u0000"},{"name":"b","type":"long"},
        {"name":"opt","type":["null","string"],"default":null}]}"#;
    let v = resolve(
        writer,
        reader,
        Value::Record(vec![
            ("drop".into(), Value::Array(vec![Value::String("x".into())])),
            ("b".into(), Value::Int(5)),
            ("old_a".into(), Value::String("hi".into())),
        ]),
    );
    assert_eq!(
        v,
        Value::Record(vec![
            ("a".into(), Value::String("hi".into())),
            ("raw".into(), Value::Bytes(vec![0xff, 0x00])),
            ("b".into(), Value::Long(5)),
            ("opt".into(), Value::Union(0, Box::new(Value::Null))),
        ])
    );
}

#[test]
fn narrowing_and_name_mismatch_are_refused_at_compile_time() {
    // apache-avro 0.22 decodes these; Java refuses them.
    for (w, r) in [(LONG, INT), (DOUBLE, FLOAT), (ENUM2_AB, ENUM1_AB)] {
        assert!(Resolver::compile(&s(w), &s(r)).is_err(), "{w} read as {r}");
    }
}

#[test]
fn invalid_schemas_and_defaults_are_refused_with_where() {
    let bad = [
        (r#"{"type":"record","name":"R"}"#, "fields"),
        (
            r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int","default":"x"}]}"#,
            "R.a",
        ),
        (
            r#"{"type":"record","name":"R","fields":[{"name":"a","type":["null","int"],"default":"x"}]}"#,
            "R.a",
        ),
        (
            r#"{"type":"enum","name":"E","symbols":["A","A"]}"#,
            "/symbols/1",
        ),
        (r#"{"type":"fixed","name":"F","size":-1}"#, "/size"),
        (r#"["int","int"]"#, "/1"),
        (r#"{"type":"array","items":"Nope"}"#, "/items"),
        (
            r#"{"type":"record","name":"R","fields":[{"name":"b","type":"bytes","default":"\u0100"}]}"#,
            "R.b",
        ),
    ];
    for (json, where_) in bad {
        let err = AvroSchema::parse(json).unwrap_err().to_string();
        assert!(err.contains(where_), "{json}: {err}");
    }
    // Avro 1.12: a union default may match any branch.
    assert!(AvroSchema::parse(
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":["null","int"],"default":3}]}"#
    )
    .is_ok());
}

#[test]
fn normalized_identity_keeps_what_resolution_needs() {
    let a = s(
        r#"{"type":"record","name":"R","namespace":"n","doc":"x","fields":[{"name":"a","type":"int","default":1}]}"#,
    );
    let b = s(
        r#"{"type":"record","name":"n.R","fields":[{"name":"a","type":"int","default":1,"doc":"y"}]}"#,
    );
    let c = s(r#"{"type":"record","name":"n.R","fields":[{"name":"a","type":"int","default":2}]}"#);
    assert_eq!(a, b);
    assert_ne!(a, c, "defaults are part of the identity");
    assert_eq!(a.canonical_form(), c.canonical_form());
    assert_eq!(a.fingerprint(), c.fingerprint());
    assert_eq!(
        a.canonical_form(),
        r#"{"name":"n.R","type":"record","fields":[{"name":"a","type":"int"}]}"#
    );
    assert_eq!(a.canonical_form(), a.inner().canonical_form());
}
