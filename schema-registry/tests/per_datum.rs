//! Resolution datum by datum, as the specification and Java's resolving
//! decoder do: what the reader cannot read fails only the datums that hold
//! it, with Java's reason text; everything else resolves.

use apache_avro::types::Value;
use proptest::prelude::*;
use schema_registry::*;

fn s(json: &str) -> AvroSchema {
    AvroSchema::parse(json).unwrap_or_else(|e| panic!("{json}: {e}"))
}

/// Resolves `value` (encoded with `writer`) to `reader` through both the
/// value and the bytes paths, checking that they agree.
fn per_datum(writer: &str, reader: &str, value: &Value) -> Result<Value, DecodeError> {
    let (w, r) = (s(writer), s(reader));
    let bytes = encode_value(&w, value).unwrap();
    let res = Resolver::compile_per_datum(&w, &r).unwrap();
    let mut out = vec![0xAA];
    match res.resolve_bytes(&bytes, &mut out) {
        Ok(n) => {
            assert_eq!(n, bytes.len());
            let v = res.resolve_value(&bytes).unwrap();
            assert_eq!(
                decode_value(&r, &out[1..]).unwrap(),
                v,
                "bytes and value agree"
            );
            Ok(v)
        }
        Err(e) => {
            assert_eq!(out, [0xAA], "output restored on error");
            assert_eq!(
                res.resolve_value(&bytes).unwrap_err(),
                e,
                "same error both ways"
            );
            Err(e)
        }
    }
}

const ENUM_ABC: &str = r#"{"type":"enum","name":"E","symbols":["A","B","C"]}"#;
const ENUM_AB: &str = r#"{"type":"enum","name":"E","symbols":["A","B"]}"#;
const ENUM_BA_DEFAULT_B: &str = r#"{"type":"enum","name":"E","symbols":["B","A"],"default":"B"}"#;

#[test]
fn missing_enum_symbol_fails_only_the_datums_holding_it() {
    // The schemas are incompatible and stay so for compile() and the check.
    assert!(matches!(
        Resolver::compile(&s(ENUM_ABC), &s(ENUM_AB)),
        Err(ResolveError::Incompatible(_))
    ));
    assert_eq!(
        per_datum(ENUM_ABC, ENUM_AB, &Value::Enum(1, "B".into())),
        Ok(Value::Enum(1, "B".into()))
    );
    let err = per_datum(ENUM_ABC, ENUM_AB, &Value::Enum(2, "C".into())).unwrap_err();
    assert_eq!(
        err,
        DecodeError::UnknownEnumSymbol {
            offset: 0,
            symbol: "C".into()
        }
    );
    assert_eq!(
        err.to_string(),
        "enum symbol \"C\" at byte 0 is unknown to the reader and it has no default"
    );
    // With a reader enum default the symbol resolves to it.
    assert_eq!(
        per_datum(ENUM_ABC, ENUM_BA_DEFAULT_B, &Value::Enum(2, "C".into())),
        Ok(Value::Enum(0, "B".into()))
    );
}

#[test]
fn unreadable_writer_union_branch_fails_only_its_datums() {
    let (w, r) = (r#"["int","string"]"#, r#""long""#);
    assert!(matches!(
        Resolver::compile(&s(w), &s(r)),
        Err(ResolveError::Incompatible(_))
    ));
    assert_eq!(
        per_datum(w, r, &Value::Union(0, Box::new(Value::Int(5)))),
        Ok(Value::Long(5))
    );
    let err = per_datum(w, r, &Value::Union(1, Box::new(Value::String("x".into())))).unwrap_err();
    assert_eq!(
        err,
        DecodeError::Unresolvable {
            offset: 1,
            path: "/".into(),
            reason: "Found string, expecting long".into()
        }
    );
    assert_eq!(
        err.to_string(),
        "datum at byte 1 cannot be resolved at / of the reader schema: Found string, expecting long"
    );
    // Reader union lacking the branch: Java's "expecting union".
    let (w, r) = (r#"["null","int","string"]"#, r#"["null","double"]"#);
    assert_eq!(
        per_datum(w, r, &Value::Union(1, Box::new(Value::Int(2)))),
        Ok(Value::Union(1, Box::new(Value::Double(2.0))))
    );
    assert_eq!(
        per_datum(w, r, &Value::Union(0, Box::new(Value::Null))),
        Ok(Value::Union(0, Box::new(Value::Null)))
    );
    assert_eq!(
        per_datum(w, r, &Value::Union(2, Box::new(Value::String("no".into())))),
        Err(DecodeError::Unresolvable {
            offset: 1,
            path: "/".into(),
            reason: "Found string, expecting union".into()
        })
    );
}

#[test]
fn mismatches_deep_inside_fail_only_datums_reaching_them() {
    // Array items of the wrong type: an empty array still resolves.
    let w = r#"{"type":"record","name":"R","fields":[{"name":"id","type":"long"},
        {"name":"tags","type":{"type":"array","items":"string"}}]}"#;
    let r = r#"{"type":"record","name":"R","fields":[{"name":"id","type":"long"},
        {"name":"tags","type":{"type":"array","items":"int"}}]}"#;
    let rec = |tags: Vec<Value>| {
        Value::Record(vec![
            ("id".into(), Value::Long(7)),
            ("tags".into(), Value::Array(tags)),
        ])
    };
    assert_eq!(per_datum(w, r, &rec(vec![])), Ok(rec(vec![])));
    assert_eq!(
        per_datum(w, r, &rec(vec![Value::String("a".into())])),
        Err(DecodeError::Unresolvable {
            offset: 2,
            path: "/fields/1/type/items".into(),
            reason: "Found string, expecting int".into()
        })
    );
    // A record missing a required reader field, reachable only through one
    // writer union branch: Java's message names the last such field.
    let w = r#"["null",{"type":"record","name":"P","fields":[{"name":"x","type":"int"}]}]"#;
    let r = r#"["null",{"type":"record","name":"P","fields":[{"name":"x","type":"int"},
        {"name":"y","type":"int"},{"name":"z","type":"int"}]}]"#;
    assert_eq!(
        per_datum(w, r, &Value::Union(0, Box::new(Value::Null))),
        Ok(Value::Union(0, Box::new(Value::Null)))
    );
    assert_eq!(
        per_datum(
            w,
            r,
            &Value::Union(
                1,
                Box::new(Value::Record(vec![("x".into(), Value::Int(1))]))
            )
        ),
        Err(DecodeError::Unresolvable {
            offset: 1,
            path: "/1".into(),
            reason: "Found P, expecting P, missing required field z".into()
        })
    );
    // Fixed of another size inside a map: an empty map resolves.
    let w = r#"{"type":"map","values":{"type":"fixed","name":"F","size":2}}"#;
    let r = r#"{"type":"map","values":{"type":"fixed","name":"F","size":3}}"#;
    assert_eq!(
        per_datum(w, r, &Value::Map(Default::default())),
        Ok(Value::Map(Default::default()))
    );
    let one = Value::Map([("k".to_string(), Value::Fixed(2, vec![1, 2]))].into());
    assert_eq!(
        per_datum(w, r, &one),
        Err(DecodeError::Unresolvable {
            offset: 3,
            path: "/values".into(),
            reason: "Found F, expecting F".into()
        })
    );
}

#[test]
fn enum_and_fixed_names_are_checked_per_datum_records_are_not() {
    // Java's resolving decoder compares enum and fixed short names (after the
    // reader's aliases) but not record names.
    let w = r#"{"type":"enum","name":"a.E1","symbols":["A"]}"#;
    let r = r#"{"type":"enum","name":"b.E2","symbols":["A"]}"#;
    assert_eq!(
        per_datum(w, r, &Value::Enum(0, "A".into())),
        Err(DecodeError::Unresolvable {
            offset: 0,
            path: "/".into(),
            reason: "Found a.E1, expecting b.E2".into()
        })
    );
    let r_alias = r#"{"type":"enum","name":"b.E2","aliases":["a.E1"],"symbols":["A"]}"#;
    assert_eq!(
        per_datum(w, r_alias, &Value::Enum(0, "A".into())),
        Ok(Value::Enum(0, "A".into()))
    );
    let w = r#"{"type":"record","name":"Old","fields":[{"name":"x","type":"int"}]}"#;
    let r = r#"{"type":"record","name":"New","fields":[{"name":"x","type":"long"}]}"#;
    assert!(!check_compatibility(&s(r), &s(w)).is_empty());
    assert_eq!(
        per_datum(w, r, &Value::Record(vec![("x".into(), Value::Int(3))])),
        Ok(Value::Record(vec![("x".into(), Value::Long(3))]))
    );
}

#[test]
fn field_aliases_crossing_other_field_names_parse_and_rename_like_java() {
    // Valid in Java; apache-avro alone refuses it ("b" already an alias of "a").
    let r = r#"{"type":"record","name":"R","fields":[
        {"name":"a","type":"string","aliases":["b"]},
        {"name":"b","type":"int","aliases":["a"]}]}"#;
    let reader = s(r);
    assert!(
        reader.json().contains(r#""aliases":["b"]"#),
        "kept in identity"
    );
    let v = Value::Record(vec![
        ("a".into(), Value::String("s".into())),
        ("b".into(), Value::Int(1)),
    ]);
    assert_eq!(
        decode_value(&reader, &encode_value(&reader, &v).unwrap()).unwrap(),
        v
    );
    // Java renames each writer field through the reader's aliases before
    // matching names: writer `a` is read by reader `b` and vice versa.
    let w = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":"string"}]}"#;
    let wv = Value::Record(vec![
        ("a".into(), Value::Int(1)),
        ("b".into(), Value::String("s".into())),
    ]);
    assert_eq!(per_datum(w, r, &wv), Ok(v));
}

#[test]
fn two_writer_fields_renamed_to_one_name_refuse_the_pair_like_java() {
    let w = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":"int"}]}"#;
    let r = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int","aliases":["b"]}]}"#;
    let err = Resolver::compile_per_datum(&s(w), &s(r)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot resolve at /: writer record R has fields \"a\" and \"b\" that both become \
         field \"a\" through the reader's aliases"
    );
}

#[test]
fn reader_enum_default_for_a_field_the_writer_lacks() {
    // Java's SchemaCompatibility checks a reader enum field without a field
    // default but with an enum default against the writer record itself.
    let w = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}"#;
    let r = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"},
        {"name":"e","type":{"type":"enum","name":"E","symbols":["X","Y"],"default":"Y"}}]}"#;
    let found = check_compatibility(&s(r), &s(w));
    let shown: Vec<String> = found.iter().map(|i| i.to_string()).collect();
    assert_eq!(
        shown,
        ["TYPE_MISMATCH at /fields/1/type: reader type: ENUM not compatible with writer type: RECORD"]
    );
    // Without the enum default: the usual missing default.
    let r_plain = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"},
        {"name":"e","type":{"type":"enum","name":"E","symbols":["X","Y"]}}]}"#;
    let shown: Vec<String> = check_compatibility(&s(r_plain), &s(w))
        .iter()
        .map(|i| i.to_string())
        .collect();
    assert_eq!(
        shown,
        ["READER_FIELD_MISSING_DEFAULT_VALUE at /fields/1: e"]
    );
    // Java's decoder does not use the enum default for a missing field either.
    assert_eq!(
        per_datum(w, r, &Value::Record(vec![("a".into(), Value::Int(1))])),
        Err(DecodeError::Unresolvable {
            offset: 0,
            path: "/".into(),
            reason: "Found R, expecting R, missing required field e".into()
        })
    );
}

#[test]
fn union_branch_selection_follows_java() {
    // Same full name wins; otherwise a structural record match, preferring
    // the same short name even after an earlier structural match.
    let w = r#"{"type":"record","name":"a.R","fields":[{"name":"x","type":"int"}]}"#;
    let r = r#"["null",{"type":"record","name":"b.Q","fields":[{"name":"x","type":"int"}]},
        {"type":"record","name":"c.R","fields":[{"name":"x","type":"long"}]}]"#;
    let rec = Value::Record(vec![("x".into(), Value::Int(4))]);
    assert_eq!(
        per_datum(w, r, &rec),
        Ok(Value::Union(
            2,
            Box::new(Value::Record(vec![("x".into(), Value::Long(4))]))
        ))
    );
    // Unnamed types: the first branch of the same type, even when its items
    // cannot be read (Java does not look deeper): an error per datum.
    let w = r#"{"type":"array","items":"string"}"#;
    let r = r#"["null",{"type":"array","items":"int"}]"#;
    assert_eq!(
        per_datum(w, r, &Value::Array(vec![])),
        Ok(Value::Union(1, Box::new(Value::Array(vec![]))))
    );
    assert_eq!(
        per_datum(w, r, &Value::Array(vec![Value::String("q".into())])),
        Err(DecodeError::Unresolvable {
            offset: 1,
            path: "/1/items".into(),
            reason: "Found string, expecting int".into()
        })
    );
}

#[test]
fn named_union_branches_match_by_full_name_after_aliases_like_java() {
    // Java's firstMatchingBranch matches an enum or fixed branch by full name
    // only (records also structurally): the compatibility check accepts this
    // pair (short names equal) but Java's decoder, and ours, fail its datums.
    let w = r#"{"type":"enum","name":"a.E","symbols":["X"]}"#;
    let r = r#"["null",{"type":"enum","name":"b.E","symbols":["X"]}]"#;
    assert!(check_compatibility(&s(r), &s(w)).is_empty());
    assert_eq!(
        per_datum(w, r, &Value::Enum(0, "X".into())),
        Err(DecodeError::Unresolvable {
            offset: 0,
            path: "/".into(),
            reason: "Found a.E, expecting union".into()
        })
    );
    // A reader alias renames the writer type first, so the branch matches.
    let r = r#"["null",{"type":"enum","name":"b.E","aliases":["a.E"],"symbols":["X"]}]"#;
    assert_eq!(
        per_datum(w, r, &Value::Enum(0, "X".into())),
        Ok(Value::Union(1, Box::new(Value::Enum(0, "X".into()))))
    );
    // Equivalent unions map branch to branch.
    let u = r#"["null",{"type":"record","name":"P","fields":[{"name":"x","type":"int"}]}]"#;
    let datum = Value::Union(
        1,
        Box::new(Value::Record(vec![("x".into(), Value::Int(8))])),
    );
    assert_eq!(per_datum(u, u, &datum), Ok(datum));
}

const TYPES: [&str; 7] = [
    r#""int""#,
    r#""long""#,
    r#""double""#,
    r#""string""#,
    r#""bytes""#,
    r#""boolean""#,
    r#""null""#,
];

fn sample(t: usize, n: i32) -> Value {
    match t {
        0 => Value::Int(n),
        1 => Value::Long(i64::from(n) * 3),
        2 => Value::Double(f64::from(n) / 2.0),
        3 => Value::String(format!("s{n}")),
        // Valid UTF-8, so that bytes -> string resolves.
        4 => Value::Bytes(format!("b{n}").into_bytes()),
        5 => Value::Boolean(n % 2 == 0),
        _ => Value::Null,
    }
}

proptest! {
    /// A datum of writer union branch `b` resolves per datum exactly as the
    /// same value written with `b` alone resolves through a checked plan, and
    /// fails (with Java's "Found …, expecting …") exactly when the reader
    /// cannot read `b`.
    #[test]
    fn writer_union_datums_resolve_branch_by_branch(
        branches in proptest::sample::subsequence((0..TYPES.len()).collect::<Vec<_>>(), 1..=4),
        reader_union in proptest::sample::subsequence((0..TYPES.len()).collect::<Vec<_>>(), 1..=3),
        reader_is_union in any::<bool>(),
        pick in any::<prop::sample::Index>(),
        n in any::<i32>(),
    ) {
        let writer = format!("[{}]", branches.iter().map(|b| TYPES[*b]).collect::<Vec<_>>().join(","));
        let reader = if reader_is_union {
            format!("[{}]", reader_union.iter().map(|b| TYPES[*b]).collect::<Vec<_>>().join(","))
        } else {
            TYPES[reader_union[0]].to_string()
        };
        let i = pick.index(branches.len());
        let b = branches[i];
        let datum = Value::Union(i as u32, Box::new(sample(b, n)));
        let got = per_datum(&writer, &reader, &datum);
        let alone = s(TYPES[b]);
        let r = s(&reader);
        if check_compatibility(&r, &alone).is_empty() {
            let bytes = encode_value(&alone, &sample(b, n)).unwrap();
            let want = Resolver::compile(&alone, &r).unwrap().resolve_value(&bytes).unwrap();
            prop_assert_eq!(got, Ok(want));
        } else {
            let want_reason = format!(
                "Found {}, expecting {}",
                TYPES[b].trim_matches('"'),
                if reader_is_union { "union" } else { TYPES[reader_union[0]].trim_matches('"') }
            );
            prop_assert_eq!(
                got,
                Err(DecodeError::Unresolvable { offset: 1, path: "/".into(), reason: want_reason })
            );
        }
    }

    /// Enum symbols: a datum resolves iff the reader has its symbol (to that
    /// symbol) or an enum default (to the default); otherwise Java's error.
    #[test]
    fn enum_datums_resolve_symbol_by_symbol(
        reader_syms in proptest::sample::subsequence(vec!["A", "B", "C", "D", "E"], 1..=5),
        default in any::<Option<prop::sample::Index>>(),
        written in 0usize..5,
    ) {
        let writer = r#"{"type":"enum","name":"E","symbols":["A","B","C","D","E"]}"#;
        let default = default.map(|d| reader_syms[d.index(reader_syms.len())]);
        let reader = match default {
            Some(d) => format!(r#"{{"type":"enum","name":"E","symbols":{:?},"default":"{d}"}}"#, reader_syms),
            None => format!(r#"{{"type":"enum","name":"E","symbols":{:?}}}"#, reader_syms),
        };
        let sym = ["A", "B", "C", "D", "E"][written];
        let got = per_datum(writer, &reader, &Value::Enum(written as u32, sym.into()));
        let target = if reader_syms.contains(&sym) { Some(sym) } else { default };
        match target {
            Some(t) => {
                let idx = reader_syms.iter().position(|x| *x == t).unwrap() as u32;
                prop_assert_eq!(got, Ok(Value::Enum(idx, t.into())));
            }
            None => prop_assert_eq!(
                got,
                Err(DecodeError::UnknownEnumSymbol { offset: 0, symbol: sym.into() })
            ),
        }
    }
}
