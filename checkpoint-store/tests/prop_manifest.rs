//! Property tests: manifest JSON round trip, name validation.

use checkpoint_store::{
    validate_file_name, validate_object_key, Compression, FileKind, Manifest, ManifestFile, Record,
    FORMAT_VERSION,
};
use proptest::prelude::*;

fn file() -> impl Strategy<Value = (String, u32, u128, bool)> {
    (
        "[A-Za-z0-9_.-]{1,20}",
        any::<u32>(),
        any::<u128>(),
        any::<bool>(),
    )
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        ".{0,12}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map("[a-z]{1,6}", inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

prop_compose! {
    fn manifest()(
        id in 1u64..1_000_000,
        epoch in any::<u64>(),
        parent in proptest::option::of(any::<u64>()),
        created_ms in any::<u64>(),
        raw_files in prop::collection::vec(file(), 0..8),
        mp in 1u16..=u16::MAX,
        lo_frac in 0.0f64..1.0,
        states in json_value(),
        user in json_value(),
        uploaded in any::<u64>(),
    ) -> Manifest {
        let mut seen = std::collections::HashSet::new();
        let files: Vec<ManifestFile> = raw_files
            .into_iter()
            .filter(|(n, ..)| validate_file_name(n).is_ok() && seen.insert(n.clone()))
            .map(|(name, size, hash, shared)| {
                let checksum = format!("{hash:032x}");
                let (kind, object, compression) = if shared {
                    (FileKind::Shared, format!("checkpoints/shared/{checksum}.sst"), Compression::None)
                } else {
                    (FileKind::Private, format!("checkpoints/chk-{id}/{name}.zst"), Compression::Zstd)
                };
                ManifestFile { name, object, size: u64::from(size), checksum, kind, compression }
            })
            .collect();
        let lo = ((mp - 1) as f64 * lo_frac) as u16;
        Manifest {
            format_version: FORMAT_VERSION,
            id,
            epoch,
            parent,
            created_ms,
            total_bytes: files.iter().map(|f| f.size).sum(),
            files,
            key_group_range: (lo, mp - 1),
            max_parallelism: mp,
            states,
            user,
            uploaded_bytes: uploaded,
            adopted_from: None,
        }
    }
}

proptest! {
    #[test]
    fn manifest_json_round_trips(m in manifest()) {
        let record = Record::Checkpoint(m.clone());
        let parsed = Record::parse(&record.to_json(), "p/_manifest", m.id).unwrap();
        prop_assert_eq!(parsed, record);
    }

    #[test]
    fn parse_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = Record::parse(&bytes, "p", 1);
    }

    #[test]
    fn accepted_file_names_are_single_safe_components(name in ".{0,40}") {
        if validate_file_name(&name).is_ok() {
            let p = std::path::Path::new(&name);
            prop_assert_eq!(p.components().count(), 1);
            let is_normal = matches!(p.components().next(), Some(std::path::Component::Normal(_)));
            prop_assert!(is_normal);
            prop_assert!(!name.contains('/') && !name.contains('\\'));
        }
    }

    #[test]
    fn accepted_object_keys_stay_in_checkpoints(parts in prop::collection::vec(prop_oneof![
        Just("..".to_string()), Just(".".to_string()), Just(String::new()),
        Just("checkpoints".to_string()), "[a-z0-9.-]{1,8}"], 1..6)) {
        let key = parts.join("/");
        if validate_object_key(&key).is_ok() {
            prop_assert!(key.starts_with("checkpoints/"));
            prop_assert!(!key.split('/').any(|c| c == ".." || c == "." || c.is_empty()));
        }
    }
}
