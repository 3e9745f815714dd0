//! Confluent schema references: parsed with the referenced schemas, stored
//! with their references, resolved when loaded, in every registry and
//! through the REST server and the remote client.

use std::sync::Arc;

use apache_avro::types::Value;
use schema_registry::*;

const ADDRESS: &str = r#"{"type":"record","name":"Address","namespace":"com.example",
    "fields":[{"name":"city","type":"string"}]}"#;
const ADDRESS2: &str = r#"{"type":"record","name":"Address","namespace":"com.example",
    "fields":[{"name":"city","type":"string"},{"name":"zip","type":"string","default":"?"}]}"#;
const USER: &str = r#"{"type":"record","name":"User","namespace":"com.example",
    "fields":[{"name":"name","type":"string"},{"name":"home","type":"Address"}]}"#;
/// References `User`, which references `Address`: parsed depth first.
const ORDER: &str = r#"{"type":"record","name":"Order","fields":[
    {"name":"buyer","type":"com.example.User"},{"name":"ship_to","type":"com.example.Address"}]}"#;

fn reference(name: &str, subject: &str, version: u32) -> SchemaReference {
    SchemaReference {
        name: name.into(),
        subject: subject.into(),
        version,
    }
}

fn parse_refs(reg: &dyn SchemaRegistry, text: &str, refs: &[(&str, &str, u32)]) -> AvroSchema {
    let refs: Vec<(String, String, VersionSelector)> = refs
        .iter()
        .map(|(n, s, v)| (n.to_string(), s.to_string(), VersionSelector::Number(*v)))
        .collect();
    parse_with_references(reg, text, &refs).unwrap()
}

#[test]
fn a_referencing_schema_is_self_contained_once_parsed() {
    let address = AvroSchema::parse(ADDRESS).unwrap();
    let user = AvroSchema::parse_with_references(
        USER,
        &[(
            reference("com.example.Address", "address", 1),
            address.clone(),
        )],
    )
    .unwrap();
    // json() inlines the referenced type; registered_json() names it.
    assert!(user.json().contains(r#""name":"com.example.Address""#));
    assert!(user
        .registered_json()
        .contains(r#"{"name":"home","type":"com.example.Address"}"#));
    assert_eq!(
        user.references(),
        [reference("com.example.Address", "address", 1)]
    );
    // Same text, another referenced version: another schema (Confluent identity).
    let other = AvroSchema::parse_with_references(
        USER,
        &[(reference("com.example.Address", "address", 2), address)],
    )
    .unwrap();
    assert_ne!(user, other);
    assert_eq!(user.json(), other.json());
    // Without the reference the type is unknown.
    let err = AvroSchema::parse(USER).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid schema at /fields/1/type: unknown type \"Address\""
    );
    // Encoding, decoding and resolution work on the whole tree.
    let v = Value::Record(vec![
        ("name".into(), Value::String("ann".into())),
        (
            "home".into(),
            Value::Record(vec![("city".into(), Value::String("Delft".into()))]),
        ),
    ]);
    let bytes = encode_value(&user, &v).unwrap();
    assert_eq!(decode_value(&user, &bytes).unwrap(), v);
}

#[test]
fn registries_store_references_and_resolve_them_when_loading() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::new(FolderStorage::open(dir.path()).unwrap()).unwrap();
    let a1 = reg
        .register("address", &AvroSchema::parse(ADDRESS).unwrap())
        .unwrap();
    let user = parse_refs(&reg, USER, &[("com.example.Address", "address", 1)]);
    let u1 = reg.register("user", &user).unwrap();
    assert_eq!(reg.register("user", &user).unwrap(), u1, "idempotent");
    let order = parse_refs(
        &reg,
        ORDER,
        &[
            ("com.example.User", "user", 1),
            ("com.example.Address", "address", 1),
        ],
    );
    let o1 = reg.register("order", &order).unwrap();
    // The subject evolves; the same user text over address v2 is a new id.
    let a2 = reg
        .register("address", &AvroSchema::parse(ADDRESS2).unwrap())
        .unwrap();
    assert_eq!(a2.version, 2);
    let user2 = parse_refs(&reg, USER, &[("com.example.Address", "address", 2)]);
    let u2 = reg.register("user", &user2).unwrap();
    assert_ne!(u2.id, u1.id);
    assert_eq!(u2.version, 2);
    // A reopened folder resolves every reference again.
    drop(reg);
    let reg = Registry::new(FolderStorage::open(dir.path()).unwrap()).unwrap();
    assert_eq!(reg.schema_by_id(u1.id).unwrap(), user);
    assert_eq!(reg.schema_by_id(o1.id).unwrap(), order);
    assert_eq!(reg.lookup("user", &user, false).unwrap().version, 1);
    assert_eq!(reg.lookup("user", &user2, false).unwrap().version, 2);
    assert_eq!(
        a1.id,
        reg.lookup("address", &AvroSchema::parse(ADDRESS).unwrap(), false)
            .unwrap()
            .id
    );
    // Resolution across the versions goes through the referenced types.
    let v = Value::Record(vec![
        ("name".into(), Value::String("ann".into())),
        (
            "home".into(),
            Value::Record(vec![("city".into(), Value::String("Delft".into()))]),
        ),
    ]);
    let bytes = encode_value(&user, &v).unwrap();
    let got = Resolver::compile(&user, &user2)
        .unwrap()
        .resolve_value(&bytes)
        .unwrap();
    let Value::Record(fields) = got else { panic!() };
    assert_eq!(
        fields[1].1,
        Value::Record(vec![
            ("city".into(), Value::String("Delft".into())),
            ("zip".into(), Value::String("?".into())),
        ])
    );
    // Referenced versions cannot be deleted while live versions use them
    // (Confluent's 42206); the referencing schemas keep loading afterwards.
    assert_eq!(
        reg.referenced_by("address", VersionSelector::Number(1))
            .unwrap(),
        [u1.id, o1.id]
    );
    let err = reg
        .delete_version("address", VersionSelector::Number(1), false)
        .unwrap_err();
    assert_eq!(err.error_code(), 42206);
    assert_eq!(
        err.to_string(),
        format!(
            "version 1 of subject \"address\" is referenced by schema(s) [{}, {}]: delete those first",
            u1.id, o1.id
        )
    );
    assert_eq!(
        reg.delete_subject("user", false).unwrap_err().error_code(),
        42206
    );
    // A schema built against another registry's content is refused.
    let forged = AvroSchema::parse_with_references(
        USER,
        &[(
            reference("com.example.Address", "address", 1),
            AvroSchema::parse(ADDRESS2).unwrap(),
        )],
    )
    .unwrap();
    let err = reg.register("user", &forged).unwrap_err();
    assert_eq!(err.error_code(), 42201);
    assert_eq!(
        err.to_string(),
        "invalid schema reference com.example.Address to \"address\" version 1: \
         the schema registered there differs from the one given"
    );
    reg.delete_subject("order", false).unwrap();
    reg.delete_version("user", VersionSelector::Number(1), false)
        .unwrap();
    reg.delete_version("address", VersionSelector::Number(1), false)
        .unwrap();
    reg.delete_version("address", VersionSelector::Number(1), true)
        .unwrap();
    assert_eq!(reg.schema_by_id(u1.id).unwrap(), user);
    assert_eq!(reg.schema_by_id(o1.id).unwrap(), order);
    // A reference to a version that does not exist.
    let err = parse_with_references(
        &reg,
        USER,
        &[(
            "com.example.Address".into(),
            "address".into(),
            VersionSelector::Number(9),
        )],
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid schema reference com.example.Address to \"address\" version 9: \
         version 9 of subject \"address\" not found"
    );
}

/// Serves a folder registry on 127.0.0.1 from a background thread.
fn serve(dir: &std::path::Path) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    let path = dir.to_path_buf();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let reg: Arc<dyn SchemaRegistry> =
            Arc::new(Registry::new(FolderStorage::open(path).unwrap()).unwrap());
        rt.block_on(server::serve(
            "127.0.0.1:0".parse().unwrap(),
            reg,
            server::DEFAULT_MAX_BODY,
            |a| tx.send(a).unwrap(),
        ))
        .unwrap();
    });
    format!("http://{}", rx.recv().unwrap())
}

#[test]
fn remote_client_and_rest_server_carry_references() {
    let dir = tempfile::tempdir().unwrap();
    let url = serve(dir.path());
    let reg = RemoteRegistry::new(&url).unwrap();
    reg.register("address", &AvroSchema::parse(ADDRESS).unwrap())
        .unwrap();
    // The remote client resolves references through the server.
    let user = parse_refs(&reg, USER, &[("com.example.Address", "address", 1)]);
    let u = reg.register("user", &user).unwrap();
    assert_eq!(reg.schema_by_id(u.id).unwrap(), user);
    let latest = reg.version("user", VersionSelector::Latest, false).unwrap();
    assert_eq!(latest.schema, user);
    assert_eq!(reg.lookup("user", &user, false).unwrap().id, u.id);
    assert!(reg
        .test_compatibility("user", &user, None)
        .unwrap()
        .is_empty());
    let order = parse_refs(
        &reg,
        ORDER,
        &[
            ("com.example.User", "user", 1),
            ("com.example.Address", "address", 1),
        ],
    );
    let o = reg.register("order", &order).unwrap();
    assert_eq!(reg.schema_by_id(o.id).unwrap(), order);
    assert_eq!(
        reg.referenced_by("user", VersionSelector::Latest).unwrap(),
        [o.id]
    );
    assert!(matches!(
        reg.delete_version("user", VersionSelector::Number(1), false),
        Err(RegistryError::Remote {
            code: 42206,
            status: 422,
            ..
        })
    ));

    // Raw HTTP: the Confluent shapes.
    let client = reqwest::blocking::Client::new();
    let get = |path: &str| -> serde_json::Value {
        client
            .get(format!("{url}{path}"))
            .send()
            .unwrap()
            .json()
            .unwrap()
    };
    let by_id = get(&format!("/schemas/ids/{}", u.id));
    assert_eq!(
        by_id["references"],
        serde_json::json!([{"name":"com.example.Address","subject":"address","version":1}])
    );
    assert_eq!(by_id["schema"], user.registered_json());
    let v = get("/subjects/user/versions/1");
    assert_eq!(v["references"][0]["subject"], "address");
    assert!(get("/subjects/address/versions/1")
        .get("references")
        .is_none());
    // `-1` pins the latest version when registering.
    let body = serde_json::json!({
        "schema": ORDER.replace("Order", "Order2"),
        "references": [
            {"name":"com.example.User","subject":"user","version":-1},
            {"name":"com.example.Address","subject":"address","version":-1}
        ]
    });
    let r: serde_json::Value = client
        .post(format!("{url}/subjects/order2/versions"))
        .body(body.to_string())
        .send()
        .unwrap()
        .json()
        .unwrap();
    let pinned = get(&format!("/schemas/ids/{}", r["id"]));
    assert_eq!(pinned["references"][0]["version"], 1);
    // Malformed references are refused with 42201 and a reason.
    for (refs, reason) in [
        (serde_json::json!({}), "\"references\" must be an array, found {}"),
        (
            serde_json::json!([{"name":"x"}]),
            "reference {\"name\":\"x\"} needs string \"name\" and \"subject\"",
        ),
        (
            serde_json::json!([{"name":"com.example.Address","subject":"nope","version":1}]),
            "invalid schema reference com.example.Address to \"nope\" version 1: subject \"nope\" not found",
        ),
    ] {
        let r = client
            .post(format!("{url}/subjects/user/versions"))
            .body(serde_json::json!({"schema": USER, "references": refs}).to_string())
            .send()
            .unwrap();
        assert_eq!(r.status(), 422);
        let j: serde_json::Value = r.json().unwrap();
        assert_eq!(j["error_code"], 42201);
        assert_eq!(j["message"], reason);
    }
}
