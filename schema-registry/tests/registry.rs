use std::sync::Arc;

use schema_registry::*;

fn rec(fields: &str) -> AvroSchema {
    AvroSchema::parse(&format!(
        r#"{{"type":"record","name":"R","fields":[{fields}]}}"#
    ))
    .unwrap()
}

fn v1() -> AvroSchema {
    rec(r#"{"name":"a","type":"int"}"#)
}
fn v2() -> AvroSchema {
    rec(r#"{"name":"a","type":"int"},{"name":"b","type":"string","default":"x"}"#)
}
/// Drops `b` and adds `c` without a default: BACKWARD-compatible with v1 only if ... not at all.
fn v3_no_default() -> AvroSchema {
    rec(r#"{"name":"a","type":"int"},{"name":"c","type":"string"}"#)
}
/// Compatible with v2 (reads it) but not with v1 (needs b).
fn v3_needs_b() -> AvroSchema {
    rec(r#"{"name":"a","type":"long"},{"name":"b","type":"string"}"#)
}

fn registries() -> Vec<(String, Box<dyn SchemaRegistry>, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().unwrap();
    vec![
        (
            "memory".into(),
            Box::new(Registry::new(MemoryStorage::new()).unwrap()),
            None,
        ),
        (
            "folder".into(),
            Box::new(Registry::new(FolderStorage::open(dir.path()).unwrap()).unwrap()),
            Some(dir),
        ),
    ]
}

#[test]
fn register_is_idempotent_and_ids_are_global() {
    for (name, reg, _d) in registries() {
        let a = reg.register("s1", &v1()).unwrap();
        assert_eq!(a, Registered { id: 1, version: 1 }, "{name}");
        assert_eq!(reg.register("s1", &v1()).unwrap(), a);
        // Same schema in another subject: same global id, its own version 1.
        assert_eq!(
            reg.register("s2", &v1()).unwrap(),
            Registered { id: 1, version: 1 }
        );
        assert_eq!(
            reg.register("s1", &v2()).unwrap(),
            Registered { id: 2, version: 2 }
        );
        assert_eq!(reg.schema_by_id(2).unwrap(), v2());
        assert_eq!(reg.lookup("s1", &v1(), false).unwrap().version, 1);
        assert_eq!(
            reg.id_usages(1).unwrap(),
            vec![("s1".to_string(), 1), ("s2".to_string(), 1)]
        );
        assert_eq!(reg.subjects(false).unwrap(), vec!["s1", "s2"]);
        assert!(matches!(
            reg.schema_by_id(9),
            Err(RegistryError::SchemaNotFound(_))
        ));
        assert!(matches!(
            reg.versions("nope", false),
            Err(RegistryError::SubjectNotFound(_))
        ));
    }
}

#[test]
fn levels_follow_confluent_semantics() {
    for (name, reg, _d) in registries() {
        assert_eq!(
            reg.level(None).unwrap(),
            CompatibilityLevel::Backward,
            "{name}"
        );
        reg.register("s", &v1()).unwrap();
        reg.register("s", &v2()).unwrap();
        // BACKWARD checks the latest only: v3_needs_b reads v2 but not v1.
        assert!(reg
            .test_compatibility("s", &v3_needs_b(), None)
            .unwrap()
            .is_empty());
        reg.set_level(Some("s"), CompatibilityLevel::BackwardTransitive)
            .unwrap();
        let issues = reg.test_compatibility("s", &v3_needs_b(), None).unwrap();
        assert_eq!(issues.len(), 1);
        assert_eq!(issues[0].existing_version, 1);
        assert_eq!(issues[0].new_schema_role, Role::Reader);
        assert_eq!(
            issues[0].incompatibility.kind,
            IncompatibilityKind::ReaderFieldMissingDefaultValue
        );
        assert_eq!(issues[0].incompatibility.path, "/fields/1");
        let err = reg.register("s", &v3_needs_b()).unwrap_err();
        assert!(matches!(
            &err,
            RegistryError::Incompatible {
                level: CompatibilityLevel::BackwardTransitive,
                ..
            }
        ));
        assert_eq!(err.error_code(), 409);
        assert_eq!(
            reg.versions("s", false).unwrap(),
            vec![1, 2],
            "refusal stores nothing"
        );
        // FORWARD: the old schema must read the new data.
        reg.set_level(Some("s"), CompatibilityLevel::Forward)
            .unwrap();
        let issues = reg.test_compatibility("s", &v3_no_default(), None).unwrap();
        assert!(
            issues.is_empty(),
            "v2 reads v3 (c ignored, b defaulted): {issues:?}"
        );
        reg.set_level(Some("s"), CompatibilityLevel::Full).unwrap();
        let issues = reg.test_compatibility("s", &v3_no_default(), None).unwrap();
        assert_eq!(
            issues.iter().map(|i| i.new_schema_role).collect::<Vec<_>>(),
            [Role::Reader]
        );
        reg.set_level(Some("s"), CompatibilityLevel::None).unwrap();
        assert_eq!(reg.register("s", &v3_no_default()).unwrap().version, 3);
        assert_eq!(
            reg.level(None).unwrap(),
            CompatibilityLevel::Backward,
            "global untouched"
        );
        assert_eq!(
            reg.delete_subject_level("s").unwrap(),
            CompatibilityLevel::None
        );
        assert!(matches!(
            reg.delete_subject_level("s"),
            Err(RegistryError::SubjectLevelNotFound(_))
        ));
        assert!(matches!(
            "sideways".parse::<CompatibilityLevel>(),
            Err(RegistryError::InvalidLevel(_))
        ));
    }
}

#[test]
fn soft_then_permanent_delete() {
    for (name, reg, _d) in registries() {
        reg.register("s", &v1()).unwrap();
        reg.register("s", &v2()).unwrap();
        assert!(matches!(
            reg.delete_version("s", VersionSelector::Number(2), true),
            Err(RegistryError::VersionNotSoftDeleted { version: 2, .. })
        ));
        assert_eq!(
            reg.delete_version("s", VersionSelector::Latest, false)
                .unwrap(),
            2,
            "{name}"
        );
        assert_eq!(reg.versions("s", false).unwrap(), vec![1]);
        assert_eq!(reg.versions("s", true).unwrap(), vec![1, 2]);
        assert!(
            reg.version("s", VersionSelector::Number(2), true)
                .unwrap()
                .deleted
        );
        // A soft-deleted version is not checked against any more, and re-registering makes a new version.
        assert_eq!(
            reg.register("s", &v2()).unwrap(),
            Registered { id: 2, version: 3 }
        );
        assert!(matches!(
            reg.delete_subject("s", true),
            Err(RegistryError::SubjectNotSoftDeleted(_))
        ));
        assert_eq!(reg.delete_subject("s", false).unwrap(), vec![1, 3]);
        assert!(reg.subjects(false).unwrap().is_empty());
        assert_eq!(reg.subjects(true).unwrap(), vec!["s"]);
        assert_eq!(reg.delete_subject("s", true).unwrap(), vec![1, 2, 3]);
        assert!(reg.subjects(true).unwrap().is_empty());
        // Schemas stay addressable by id.
        assert_eq!(reg.schema_by_id(1).unwrap(), v1());
    }
}

#[test]
fn two_processes_registering_at_once_on_one_folder() {
    let dir = tempfile::tempdir().unwrap();
    let schemas: Vec<AvroSchema> = (0..8)
        .map(|i| {
            rec(&format!(
                r#"{{"name":"a","type":"int"}},{{"name":"f{i}","type":"int","default":{i}}}"#
            ))
        })
        .collect();
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let path = dir.path().to_path_buf();
            let schemas = schemas.clone();
            std::thread::spawn(move || {
                // Each thread opens its own registry: no shared in-process state.
                let reg = Registry::new(FolderStorage::open(&path).unwrap()).unwrap();
                reg.set_level(Some("s"), CompatibilityLevel::None).unwrap();
                let mut got = Vec::new();
                for (i, s) in schemas.iter().enumerate() {
                    if i % 4 == t || i % 2 == t % 2 {
                        got.push((i, reg.register("s", s).unwrap()));
                    }
                }
                got
            })
        })
        .collect();
    let results: Vec<(usize, Registered)> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let reg = Registry::new(FolderStorage::open(dir.path()).unwrap()).unwrap();
    let versions = reg.versions("s", false).unwrap();
    assert_eq!(
        versions,
        (1..=8).collect::<Vec<u32>>(),
        "each schema exactly once, no version lost"
    );
    for (i, r) in results {
        let sv = reg
            .version("s", VersionSelector::Number(r.version), false)
            .unwrap();
        assert_eq!(
            sv.schema, schemas[i],
            "every caller got the version holding its schema"
        );
        assert_eq!(sv.id, r.id);
    }
}

#[test]
fn folder_layout_is_versioned_and_refuses_newer_formats() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::new(FolderStorage::open(dir.path()).unwrap()).unwrap();
    reg.register("my.subject/x", &v1()).unwrap();
    let stamp = std::fs::read_to_string(dir.path().join("registry.json")).unwrap();
    assert_eq!(stamp, r#"{"format_version":1}"#);
    assert!(dir
        .path()
        .join("subjects/my%2Esubject%2Fx/versions/0000000001.json")
        .exists());
    assert!(dir.path().join("ids/0000000001.json").exists());
    assert_eq!(reg.subjects(false).unwrap(), vec!["my.subject/x"]);
    std::fs::write(dir.path().join("registry.json"), r#"{"format_version":2}"#).unwrap();
    assert!(matches!(
        Registry::new(FolderStorage::open(dir.path()).unwrap()),
        Err(RegistryError::Corrupt { .. })
    ));
}

/// Serves an in-memory registry on 127.0.0.1 from a background thread.
fn serve(max_body: usize) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let reg: Arc<dyn SchemaRegistry> = Arc::new(Registry::new(MemoryStorage::new()).unwrap());
        rt.block_on(server::serve(
            "127.0.0.1:0".parse().unwrap(),
            reg,
            max_body,
            |a| tx.send(a).unwrap(),
        ))
        .unwrap();
    });
    format!("http://{}", rx.recv().unwrap())
}

#[test]
fn remote_client_against_our_server() {
    let url = serve(server::DEFAULT_MAX_BODY);
    let reg = RemoteRegistry::new(&url).unwrap();
    assert_eq!(
        reg.register("s", &v1()).unwrap(),
        Registered { id: 1, version: 1 }
    );
    assert_eq!(
        reg.register("s", &v2()).unwrap(),
        Registered { id: 2, version: 2 }
    );
    assert_eq!(
        reg.version("s", VersionSelector::Latest, false)
            .unwrap()
            .schema,
        v2()
    );
    assert_eq!(reg.schema_by_id(1).unwrap(), v1());
    reg.set_level(Some("s"), CompatibilityLevel::BackwardTransitive)
        .unwrap();
    assert_eq!(
        reg.subject_level("s").unwrap(),
        Some(CompatibilityLevel::BackwardTransitive)
    );
    assert_eq!(reg.subject_level("other").unwrap(), None);
    let issues = reg.test_compatibility("s", &v3_needs_b(), None).unwrap();
    assert_eq!(issues[0].existing_version, 1);
    assert_eq!(
        issues[0].incompatibility.kind,
        IncompatibilityKind::ReaderFieldMissingDefaultValue
    );
    match reg.register("s", &v3_needs_b()) {
        Err(RegistryError::Incompatible { issues, level, .. }) => {
            assert_eq!(level, CompatibilityLevel::BackwardTransitive);
            assert_eq!(issues[0].incompatibility.path, "/fields/1");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        reg.version("s", VersionSelector::Number(7), false),
        Err(RegistryError::Remote {
            code: 40402,
            status: 404,
            ..
        })
    ));
    assert!(matches!(
        reg.versions("zzz", false),
        Err(RegistryError::Remote { code: 40401, .. })
    ));
    assert!(matches!(
        reg.schema_by_id(99),
        Err(RegistryError::Remote { code: 40403, .. })
    ));
    assert_eq!(
        reg.delete_version("s", VersionSelector::Number(2), false)
            .unwrap(),
        2
    );
    assert_eq!(reg.versions("s", false).unwrap(), vec![1]);
}

#[test]
fn server_error_codes_and_content_type() {
    let url = serve(1024);
    let client = reqwest::blocking::Client::new();
    let post = |path: &str, body: String| {
        client
            .post(format!("{url}{path}"))
            .body(body)
            .send()
            .unwrap()
    };
    let r = post(
        "/subjects/s/versions",
        r#"{"schema":"{\"type\":\"nope\"}"}"#.into(),
    );
    assert_eq!(r.status(), 422);
    assert_eq!(r.headers()["content-type"], server::CONTENT_TYPE);
    let j: serde_json::Value = r.json().unwrap();
    assert_eq!(j["error_code"], 42201);
    let r = post(
        "/subjects/s/versions",
        format!(r#"{{"schema":"\"{}\""}}"#, "x".repeat(2000)),
    );
    assert_eq!(r.status(), 413);
    assert_eq!(r.json::<serde_json::Value>().unwrap()["error_code"], 413);
    let r = client
        .put(format!("{url}/config"))
        .body(r#"{"compatibility":"SIDEWAYS"}"#)
        .send()
        .unwrap();
    assert_eq!(r.json::<serde_json::Value>().unwrap()["error_code"], 42203);
    let r = client
        .get(format!("{url}/subjects/s/versions/abc"))
        .send()
        .unwrap();
    assert_eq!(r.json::<serde_json::Value>().unwrap()["error_code"], 42202);
    let r = client.get(format!("{url}/config/s")).send().unwrap();
    assert_eq!(r.json::<serde_json::Value>().unwrap()["error_code"], 40408);
    let r = client.get(format!("{url}/config")).send().unwrap();
    assert_eq!(
        r.json::<serde_json::Value>().unwrap()["compatibilityLevel"],
        "BACKWARD"
    );
}
