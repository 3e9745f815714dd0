//! `savepoint schema ...`: thin commands over `schema_registry`'s public API.
//!
//! Every command that talks to a registry takes `--registry LOCATION`: a
//! folder, `memory:`, or an `http(s)://` URL of a Confluent-compatible
//! registry (env `SCHEMA_REGISTRY`). Exit codes: 0 success / compatible /
//! accepted, 1 incompatible / refused / resolution failed, and callers map
//! `Err` to 2.

use std::error::Error;
use std::io::Write;
use std::path::{Path, PathBuf};

use schema_registry::{
    check_compatibility, decode_value, open_registry, parse_with_references, value_to_json,
    AvroSchema, CompatibilityLevel, DecodeError, Incompatibility, Resolver, SchemaRegistry,
    VersionSelector,
};
use serde_json::{json, Value as Json};

pub type CmdError = Box<dyn Error + Send + Sync>;

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OutputFormat {
    #[default]
    Table,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct RegistryArg {
    /// Registry location: folder, `memory:`, or http(s):// URL of a Confluent-compatible registry.
    #[arg(long, env = "SCHEMA_REGISTRY")]
    pub registry: String,
}

#[derive(Debug, clap::Subcommand)]
pub enum SchemaCmd {
    /// Register a schema under a subject (refused with every reason if incompatible).
    Register {
        #[command(flatten)]
        registry: RegistryArg,
        #[arg(long)]
        subject: String,
        /// Path of the .avsc file.
        #[arg(long)]
        schema: PathBuf,
        /// Confluent schema reference NAME=SUBJECT:VERSION (repeatable): the
        /// named type NAME of SUBJECT's VERSION (a number or `latest`).
        #[arg(long = "reference", value_name = "NAME=SUBJECT:VERSION")]
        references: Vec<String>,
    },
    /// List subjects, or the versions of one subject.
    List {
        #[command(flatten)]
        registry: RegistryArg,
        #[arg(long)]
        subject: Option<String>,
        /// Include soft-deleted subjects/versions.
        #[arg(long)]
        deleted: bool,
    },
    /// Show one version of a subject (or a schema by global id).
    Show {
        #[command(flatten)]
        registry: RegistryArg,
        #[arg(long, required_unless_present = "id")]
        subject: Option<String>,
        /// Version number or `latest`.
        #[arg(long, default_value = "latest")]
        version: String,
        /// Global schema id instead of subject/version.
        #[arg(long, conflicts_with = "subject")]
        id: Option<u32>,
    },
    /// Show or set the compatibility level of a subject (or the global one).
    Config {
        #[command(flatten)]
        registry: RegistryArg,
        #[arg(long)]
        subject: Option<String>,
        /// New level: BACKWARD, BACKWARD_TRANSITIVE, FORWARD, FORWARD_TRANSITIVE, FULL, FULL_TRANSITIVE, NONE.
        #[arg(long)]
        set: Option<String>,
    },
    /// Compare two versions of a subject field by field.
    Diff {
        #[command(flatten)]
        registry: RegistryArg,
        #[arg(long)]
        subject: String,
        #[arg(long)]
        from: String,
        #[arg(long, default_value = "latest")]
        to: String,
    },
    /// Soft-delete (or with --permanent, purge) a version or a whole subject.
    Delete {
        #[command(flatten)]
        registry: RegistryArg,
        #[arg(long)]
        subject: String,
        /// Version number or `latest`; the whole subject when absent.
        #[arg(long)]
        version: Option<String>,
        #[arg(long)]
        permanent: bool,
    },
    /// Would registering this schema be accepted under the subject's level? (exit 0 yes, 1 no)
    Check {
        #[command(flatten)]
        registry: RegistryArg,
        #[arg(long)]
        subject: String,
        #[arg(long)]
        schema: PathBuf,
        /// Confluent schema reference NAME=SUBJECT:VERSION (repeatable).
        #[arg(long = "reference", value_name = "NAME=SUBJECT:VERSION")]
        references: Vec<String>,
    },
    /// Can a reader with R read data written with W? (exit 0 yes, 1 no, 2 error)
    Compat {
        #[arg(long)]
        writer: PathBuf,
        #[arg(long)]
        reader: PathBuf,
    },
    /// Decode one Avro binary datum written with W, resolved to R, as Avro JSON.
    Decode {
        #[arg(long)]
        writer: PathBuf,
        #[arg(long)]
        reader: Option<PathBuf>,
        #[arg(long)]
        input: PathBuf,
    },
}

/// Runs a command, printing to stdout. `Ok(code)` is the exit code; map `Err` to exit 2.
pub fn run(cmd: SchemaCmd, output: OutputFormat) -> Result<i32, CmdError> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    run_to(cmd, output, &mut out)
}

/// [`run`] writing to `out` (tests capture it).
pub fn run_to(cmd: SchemaCmd, output: OutputFormat, out: &mut dyn Write) -> Result<i32, CmdError> {
    match cmd {
        SchemaCmd::Register {
            registry,
            subject,
            schema,
            references,
        } => {
            let reg = open(&registry)?;
            let schema = read_schema_with_references(&*reg, &schema, &references)?;
            register(&*reg, &subject, &schema, output, out)
        }
        SchemaCmd::List {
            registry,
            subject,
            deleted,
        } => list(&*open(&registry)?, subject.as_deref(), deleted, output, out),
        SchemaCmd::Show {
            registry,
            subject,
            version,
            id,
        } => show(
            &*open(&registry)?,
            subject.as_deref(),
            &version,
            id,
            output,
            out,
        ),
        SchemaCmd::Config {
            registry,
            subject,
            set,
        } => config(
            &*open(&registry)?,
            subject.as_deref(),
            set.as_deref(),
            output,
            out,
        ),
        SchemaCmd::Diff {
            registry,
            subject,
            from,
            to,
        } => diff(&*open(&registry)?, &subject, &from, &to, output, out),
        SchemaCmd::Delete {
            registry,
            subject,
            version,
            permanent,
        } => delete(
            &*open(&registry)?,
            &subject,
            version.as_deref(),
            permanent,
            output,
            out,
        ),
        SchemaCmd::Check {
            registry,
            subject,
            schema,
            references,
        } => {
            let reg = open(&registry)?;
            let schema = read_schema_with_references(&*reg, &schema, &references)?;
            check(&*reg, &subject, &schema, output, out)
        }
        SchemaCmd::Compat { writer, reader } => {
            compat(&read_schema(&writer)?, &read_schema(&reader)?, output, out)
        }
        SchemaCmd::Decode {
            writer,
            reader,
            input,
        } => {
            let w = read_schema(&writer)?;
            let r = match reader {
                Some(p) => read_schema(&p)?,
                None => w.clone(),
            };
            let bytes = std::fs::read(&input)
                .map_err(|e| format!("cannot read {}: {e}", input.display()))?;
            decode(&w, &r, &bytes, output, out)
        }
    }
}

fn open(r: &RegistryArg) -> Result<Box<dyn SchemaRegistry>, CmdError> {
    Ok(open_registry(&r.registry)
        .map_err(|e| format!("cannot open registry {:?}: {e}", r.registry))?)
}

fn read_schema(path: &Path) -> Result<AvroSchema, CmdError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(AvroSchema::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?)
}

/// A schema file using named types of other subjects' versions, each given
/// as `NAME=SUBJECT:VERSION`, resolved in `reg`.
fn read_schema_with_references(
    reg: &dyn SchemaRegistry,
    path: &Path,
    references: &[String],
) -> Result<AvroSchema, CmdError> {
    if references.is_empty() {
        return read_schema(path);
    }
    let mut refs = Vec::with_capacity(references.len());
    for r in references {
        let parsed = r.split_once('=').and_then(|(name, rest)| {
            let (subject, v) = rest.rsplit_once(':')?;
            Some((name, subject, v))
        });
        let Some((name, subject, v)) = parsed else {
            return Err(format!("--reference {r:?}: expected NAME=SUBJECT:VERSION").into());
        };
        refs.push((name.to_string(), subject.to_string(), version(v)?));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(parse_with_references(reg, &text, &refs).map_err(|e| format!("{}: {e}", path.display()))?)
}

fn version(s: &str) -> Result<VersionSelector, CmdError> {
    Ok(s.parse::<VersionSelector>()?)
}

fn emit(
    out: &mut dyn Write,
    output: OutputFormat,
    value: &Json,
    table: &str,
) -> Result<(), CmdError> {
    match output {
        OutputFormat::Json => writeln!(out, "{}", serde_json::to_string_pretty(value)?)?,
        OutputFormat::Table => {
            if !table.is_empty() {
                writeln!(out, "{}", table.trim_end())?;
            }
        }
    }
    Ok(())
}

fn issues_table(issues: &[String]) -> String {
    issues.iter().map(|i| format!("  - {i}\n")).collect()
}

fn register(
    reg: &dyn SchemaRegistry,
    subject: &str,
    schema: &AvroSchema,
    output: OutputFormat,
    out: &mut dyn Write,
) -> Result<i32, CmdError> {
    match reg.register(subject, schema) {
        Ok(r) => {
            let table = format!("registered {subject} version {} (id {})", r.version, r.id);
            emit(
                out,
                output,
                &json!({"subject": subject, "version": r.version, "id": r.id}),
                &table,
            )?;
            Ok(0)
        }
        Err(schema_registry::RegistryError::Incompatible { level, issues, .. }) => {
            let lines: Vec<String> = issues.iter().map(|i| i.to_string()).collect();
            let table = format!(
                "refused: incompatible with {subject} under {level}\n{}",
                issues_table(&lines)
            );
            emit(
                out,
                output,
                &json!({"subject": subject, "registered": false, "level": level, "incompatibilities": issues}),
                &table,
            )?;
            Ok(1)
        }
        Err(e) => Err(e.into()),
    }
}

fn list(
    reg: &dyn SchemaRegistry,
    subject: Option<&str>,
    deleted: bool,
    output: OutputFormat,
    out: &mut dyn Write,
) -> Result<i32, CmdError> {
    match subject {
        None => {
            let subjects = reg.subjects(deleted)?;
            emit(out, output, &json!(subjects), &subjects.join("\n"))?;
        }
        Some(s) => {
            let mut rows = Vec::new();
            let mut table = format!(
                "{:<8} {:<8} {:<18} {}\n",
                "VERSION", "ID", "FINGERPRINT", "DELETED"
            );
            for v in reg.versions(s, deleted)? {
                let sv = reg.version(s, VersionSelector::Number(v), true)?;
                let fp = format!("{:016x}", sv.schema.fingerprint());
                table.push_str(&format!(
                    "{:<8} {:<8} {:<18} {}\n",
                    sv.version, sv.id, fp, sv.deleted
                ));
                rows.push(json!({"version": sv.version, "id": sv.id, "fingerprint": fp, "deleted": sv.deleted}));
            }
            emit(
                out,
                output,
                &json!({"subject": s, "versions": rows}),
                &table,
            )?;
        }
    }
    Ok(0)
}

fn show(
    reg: &dyn SchemaRegistry,
    subject: Option<&str>,
    v: &str,
    id: Option<u32>,
    output: OutputFormat,
    out: &mut dyn Write,
) -> Result<i32, CmdError> {
    let (meta, schema) = match (id, subject) {
        (Some(id), _) => (json!({"id": id}), reg.schema_by_id(id)?),
        (None, Some(s)) => {
            let sv = reg.version(s, version(v)?, false)?;
            (
                json!({"subject": sv.subject, "version": sv.version, "id": sv.id}),
                sv.schema,
            )
        }
        (None, None) => return Err("give --subject or --id".into()),
    };
    let schema_json: Json = serde_json::from_str(schema.json())?;
    let fp = format!("{:016x}", schema.fingerprint());
    let mut value = meta.clone();
    value["fingerprint"] = json!(fp);
    value["canonical_form"] = json!(schema.canonical_form());
    value["schema"] = schema_json.clone();
    let header: Vec<String> = meta
        .as_object()
        .map(|m| m.iter().map(|(k, v)| format!("{k}: {v}")).collect())
        .unwrap_or_default();
    let table = format!(
        "{}\nfingerprint: {fp}\n{}",
        header.join("\n"),
        serde_json::to_string_pretty(&schema_json)?
    );
    emit(out, output, &value, &table)?;
    Ok(0)
}

fn config(
    reg: &dyn SchemaRegistry,
    subject: Option<&str>,
    set: Option<&str>,
    output: OutputFormat,
    out: &mut dyn Write,
) -> Result<i32, CmdError> {
    if let Some(level) = set {
        let level: CompatibilityLevel = level.parse()?;
        reg.set_level(subject, level)?;
    }
    let level = reg.level(subject)?;
    let own = match subject {
        Some(s) => reg.subject_level(s)?.is_some(),
        None => true,
    };
    let scope = subject.unwrap_or("(global)");
    let table = format!(
        "{scope}: {level}{}",
        if own { "" } else { " (global default)" }
    );
    emit(
        out,
        output,
        &json!({"subject": subject, "compatibility": level, "own_level": own}),
        &table,
    )?;
    Ok(0)
}

/// Top-level record fields of a normalized schema, by name, as JSON.
fn fields(schema: &AvroSchema) -> Vec<(String, Json)> {
    let v: Json = serde_json::from_str(schema.json()).unwrap_or(Json::Null);
    v.get("fields")
        .and_then(Json::as_array)
        .map(|fs| {
            fs.iter()
                .filter_map(|f| Some((f.get("name")?.as_str()?.to_string(), f.clone())))
                .collect()
        })
        .unwrap_or_default()
}

fn diff(
    reg: &dyn SchemaRegistry,
    subject: &str,
    from: &str,
    to: &str,
    output: OutputFormat,
    out: &mut dyn Write,
) -> Result<i32, CmdError> {
    let a = reg.version(subject, version(from)?, true)?;
    let b = reg.version(subject, version(to)?, true)?;
    let (fa, fb) = (fields(&a.schema), fields(&b.schema));
    let mut added = Vec::new();
    let mut removed = Vec::new();
    let mut changed = Vec::new();
    let mut table = format!("{subject}: version {} -> {}\n", a.version, b.version);
    for (name, f) in &fb {
        match fa.iter().find(|(n, _)| n == name) {
            None => {
                table.push_str(&format!("+ {name}: {}\n", f));
                added.push(f.clone());
            }
            Some((_, old)) if old != f => {
                table.push_str(&format!("~ {name}: {} -> {}\n", old, f));
                changed.push(json!({"field": name, "from": old, "to": f}));
            }
            Some(_) => {}
        }
    }
    for (name, f) in &fa {
        if !fb.iter().any(|(n, _)| n == name) {
            table.push_str(&format!("- {name}: {}\n", f));
            removed.push(f.clone());
        }
    }
    if fa.is_empty() && fb.is_empty() && a.schema != b.schema {
        table.push_str(&format!("~ {} -> {}\n", a.schema.json(), b.schema.json()));
    }
    let backward = check_compatibility(&b.schema, &a.schema);
    let forward = check_compatibility(&a.schema, &b.schema);
    table.push_str(&format!(
        "new reads old (backward): {}\nold reads new (forward): {}\n",
        backward.is_empty(),
        forward.is_empty()
    ));
    let lines: Vec<String> = backward
        .iter()
        .chain(&forward)
        .map(|i| i.to_string())
        .collect();
    table.push_str(&issues_table(&lines));
    let value = json!({
        "subject": subject, "from": a.version, "to": b.version,
        "added": added, "removed": removed, "changed": changed,
        "backward_compatible": backward.is_empty(), "forward_compatible": forward.is_empty(),
        "backward_incompatibilities": backward, "forward_incompatibilities": forward,
    });
    emit(out, output, &value, &table)?;
    Ok(0)
}

fn delete(
    reg: &dyn SchemaRegistry,
    subject: &str,
    v: Option<&str>,
    permanent: bool,
    output: OutputFormat,
    out: &mut dyn Write,
) -> Result<i32, CmdError> {
    let versions = match v {
        Some(v) => vec![reg.delete_version(subject, version(v)?, permanent)?],
        None => reg.delete_subject(subject, permanent)?,
    };
    let how = if permanent {
        "permanently deleted"
    } else {
        "soft-deleted"
    };
    let list: Vec<String> = versions.iter().map(u32::to_string).collect();
    let table = format!("{how} {subject} version(s) {}", list.join(", "));
    emit(
        out,
        output,
        &json!({"subject": subject, "deleted_versions": versions, "permanent": permanent}),
        &table,
    )?;
    Ok(0)
}

fn check(
    reg: &dyn SchemaRegistry,
    subject: &str,
    schema: &AvroSchema,
    output: OutputFormat,
    out: &mut dyn Write,
) -> Result<i32, CmdError> {
    let level = reg.level(Some(subject))?;
    let issues = match reg.test_compatibility(subject, schema, None) {
        Ok(i) => i,
        // A new subject accepts any valid schema.
        Err(schema_registry::RegistryError::SubjectNotFound(_)) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    let lines: Vec<String> = issues.iter().map(|i| i.to_string()).collect();
    let table = if issues.is_empty() {
        format!("accepted: compatible with {subject} under {level}")
    } else {
        format!("refused under {level}:\n{}", issues_table(&lines))
    };
    emit(
        out,
        output,
        &json!({"subject": subject, "level": level, "compatible": issues.is_empty(), "incompatibilities": issues}),
        &table,
    )?;
    Ok(i32::from(!issues.is_empty()))
}

fn incompat_json(found: &[Incompatibility]) -> Json {
    json!({"compatible": found.is_empty(), "incompatibilities": found})
}

fn compat(
    writer: &AvroSchema,
    reader: &AvroSchema,
    output: OutputFormat,
    out: &mut dyn Write,
) -> Result<i32, CmdError> {
    let found = check_compatibility(reader, writer);
    let lines: Vec<String> = found.iter().map(|i| i.to_string()).collect();
    let table = if found.is_empty() {
        "compatible: the reader can read the writer's data".to_string()
    } else {
        format!("incompatible:\n{}", issues_table(&lines))
    };
    emit(out, output, &incompat_json(&found), &table)?;
    Ok(i32::from(!found.is_empty()))
}

fn decode(
    writer: &AvroSchema,
    reader: &AvroSchema,
    bytes: &[u8],
    output: OutputFormat,
    out: &mut dyn Write,
) -> Result<i32, CmdError> {
    let value = if writer == reader {
        decode_value(writer, bytes)?
    } else {
        // Datum by datum, as the specification: an incompatible pair still
        // resolves the datums that avoid what the reader cannot read.
        match Resolver::compile_per_datum(writer, reader)?.resolve_value(bytes) {
            Ok(v) => v,
            Err(e @ (DecodeError::Unresolvable { .. } | DecodeError::UnknownEnumSymbol { .. })) => {
                let found = check_compatibility(reader, writer);
                let lines: Vec<String> = found.iter().map(|i| i.to_string()).collect();
                let table = format!(
                    "cannot resolve this datum: {e}\nthe reader cannot read every datum of the writer:\n{}",
                    issues_table(&lines)
                );
                let mut j = incompat_json(&found);
                j["error"] = json!(e.to_string());
                emit(out, output, &j, &table)?;
                return Ok(1);
            }
            Err(e) => return Err(e.into()),
        }
    };
    // Avro JSON encoding in both formats: it is the output of this command.
    let j = value_to_json(reader, &value);
    match output {
        OutputFormat::Json => writeln!(out, "{j}")?,
        OutputFormat::Table => writeln!(out, "{}", serde_json::to_string_pretty(&j)?)?,
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &str = r#"{"type":"record","name":"Imp","fields":[{"name":"id","type":"long"},{"name":"row","type":"int"},
        {"name":"device","type":["null","string"],"default":null}]}"#;
    const V2: &str = r#"{"type":"record","name":"Imp","fields":[{"name":"id","type":"long"},{"name":"row","type":"long"},
        {"name":"device","type":["null","string"],"default":null},{"name":"country","type":"string","default":"??"}]}"#;
    const V3: &str = r#"{"type":"record","name":"Imp","fields":[{"name":"id","type":"long"},{"name":"session","type":"string"}]}"#;

    struct Env {
        dir: tempfile::TempDir,
    }

    impl Env {
        fn new() -> Self {
            Env {
                dir: tempfile::tempdir().unwrap(),
            }
        }
        fn file(&self, name: &str, body: &[u8]) -> PathBuf {
            let p = self.dir.path().join(name);
            std::fs::write(&p, body).unwrap();
            p
        }
        fn registry(&self) -> RegistryArg {
            RegistryArg {
                registry: self.dir.path().join("reg").to_string_lossy().into_owned(),
            }
        }
    }

    fn exec(cmd: SchemaCmd, output: OutputFormat) -> (i32, String) {
        let mut buf = Vec::new();
        let code = run_to(cmd, output, &mut buf).unwrap();
        (code, String::from_utf8(buf).unwrap())
    }

    #[test]
    fn compat_exit_codes_and_json_shape() {
        let env = Env::new();
        let (v1, v3) = (
            env.file("v1.avsc", V1.as_bytes()),
            env.file("v3.avsc", V3.as_bytes()),
        );
        let (code, text) = exec(
            SchemaCmd::Compat {
                writer: v1.clone(),
                reader: v3.clone(),
            },
            OutputFormat::Json,
        );
        assert_eq!(code, 1);
        let j: Json = serde_json::from_str(&text).unwrap();
        assert_eq!(j["compatible"], json!(false));
        assert_eq!(
            j["incompatibilities"][0]["kind"],
            json!("READER_FIELD_MISSING_DEFAULT_VALUE")
        );
        assert_eq!(j["incompatibilities"][0]["path"], json!("/fields/1"));
        let (code, _) = exec(
            SchemaCmd::Compat {
                writer: v1.clone(),
                reader: v1,
            },
            OutputFormat::Table,
        );
        assert_eq!(code, 0);
        let missing = env.dir.path().join("nope.avsc");
        assert!(run_to(
            SchemaCmd::Compat {
                writer: missing,
                reader: v3
            },
            OutputFormat::Json,
            &mut Vec::new()
        )
        .is_err());
    }

    #[test]
    fn register_check_diff_delete_on_a_folder() {
        let env = Env::new();
        let (v1, v2, v3) = (
            env.file("v1.avsc", V1.as_bytes()),
            env.file("v2.avsc", V2.as_bytes()),
            env.file("v3.avsc", V3.as_bytes()),
        );
        let reg = |s: &str, p: &PathBuf| SchemaCmd::Register {
            registry: env.registry(),
            subject: s.into(),
            schema: p.clone(),
            references: Vec::new(),
        };
        assert_eq!(exec(reg("imp", &v1), OutputFormat::Table).0, 0);
        assert_eq!(exec(reg("imp", &v2), OutputFormat::Table).0, 0);
        let (code, text) = exec(
            SchemaCmd::Check {
                registry: env.registry(),
                subject: "imp".into(),
                schema: v3.clone(),
                references: Vec::new(),
            },
            OutputFormat::Json,
        );
        assert_eq!(code, 1);
        let j: Json = serde_json::from_str(&text).unwrap();
        assert_eq!(j["incompatibilities"][0]["existing_version"], json!(2));
        assert_eq!(exec(reg("imp", &v3), OutputFormat::Table).0, 1);
        let (_, text) = exec(
            SchemaCmd::Diff {
                registry: env.registry(),
                subject: "imp".into(),
                from: "1".into(),
                to: "latest".into(),
            },
            OutputFormat::Json,
        );
        let j: Json = serde_json::from_str(&text).unwrap();
        assert_eq!(j["added"][0]["name"], json!("country"));
        assert_eq!(j["changed"][0]["field"], json!("row"));
        assert_eq!(j["backward_compatible"], json!(true));
        assert_eq!(j["forward_compatible"], json!(false));
        let (code, text) = exec(
            SchemaCmd::Delete {
                registry: env.registry(),
                subject: "imp".into(),
                version: Some("2".into()),
                permanent: false,
            },
            OutputFormat::Table,
        );
        assert_eq!((code, text.trim()), (0, "soft-deleted imp version(s) 2"));
        let (_, text) = exec(
            SchemaCmd::List {
                registry: env.registry(),
                subject: Some("imp".into()),
                deleted: false,
            },
            OutputFormat::Json,
        );
        let j: Json = serde_json::from_str(&text).unwrap();
        assert_eq!(j["versions"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn decode_prints_avro_json_of_the_resolved_value() {
        let env = Env::new();
        let (v1, v2) = (
            env.file("v1.avsc", V1.as_bytes()),
            env.file("v2.avsc", V2.as_bytes()),
        );
        // id=5, row=3, device = union branch 1 "tv"
        let input = env.file("datum.bin", &[10, 6, 2, 4, b't', b'v']);
        let (code, text) = exec(
            SchemaCmd::Decode {
                writer: v1,
                reader: Some(v2),
                input,
            },
            OutputFormat::Json,
        );
        assert_eq!(code, 0);
        let j: Json = serde_json::from_str(&text).unwrap();
        assert_eq!(
            j,
            json!({"id": 5, "row": 3, "device": {"string": "tv"}, "country": "??"})
        );
    }

    #[test]
    fn register_and_check_with_schema_references() {
        let env = Env::new();
        let address = env.file(
            "address.avsc",
            br#"{"type":"record","name":"com.example.Address","fields":[{"name":"city","type":"string"}]}"#,
        );
        let user = env.file(
            "user.avsc",
            br#"{"type":"record","name":"com.example.User","fields":[{"name":"home","type":"com.example.Address"}]}"#,
        );
        let register =
            |subject: &str, schema: &PathBuf, references: Vec<String>| SchemaCmd::Register {
                registry: env.registry(),
                subject: subject.into(),
                schema: schema.clone(),
                references,
            };
        assert_eq!(
            exec(register("address", &address, vec![]), OutputFormat::Table).0,
            0
        );
        let r = vec!["com.example.Address=address:1".to_string()];
        let (code, text) = exec(register("user", &user, r.clone()), OutputFormat::Table);
        assert_eq!((code, text.trim()), (0, "registered user version 1 (id 2)"));
        let (code, _) = exec(
            SchemaCmd::Check {
                registry: env.registry(),
                subject: "user".into(),
                schema: user.clone(),
                references: vec!["com.example.Address=address:latest".into()],
            },
            OutputFormat::Json,
        );
        assert_eq!(code, 0);
        let err = run_to(
            register("user", &user, vec!["nope".into()]),
            OutputFormat::Table,
            &mut Vec::new(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "--reference \"nope\": expected NAME=SUBJECT:VERSION"
        );
        // Without the reference the type is unknown.
        assert!(run_to(
            register("user", &user, vec![]),
            OutputFormat::Table,
            &mut Vec::new()
        )
        .is_err());
        let stored = open_registry(&env.registry().registry)
            .unwrap()
            .version("user", VersionSelector::Latest, false)
            .unwrap();
        assert_eq!(stored.schema.references()[0].subject, "address");
    }

    #[test]
    fn decode_resolves_datum_by_datum_and_names_what_it_cannot_read() {
        let env = Env::new();
        let w = env.file("w.avsc", br#"["int","string"]"#);
        let r = env.file("r.avsc", br#""long""#);
        // Branch 0 (int 3): readable although the schemas are incompatible.
        let (code, text) = exec(
            SchemaCmd::Decode {
                writer: w.clone(),
                reader: Some(r.clone()),
                input: env.file("int.bin", &[0, 6]),
            },
            OutputFormat::Json,
        );
        assert_eq!((code, text.trim()), (0, "3"));
        // Branch 1 (string "x"): the reader has no branch for it.
        let (code, text) = exec(
            SchemaCmd::Decode {
                writer: w,
                reader: Some(r),
                input: env.file("str.bin", &[2, 2, b'x']),
            },
            OutputFormat::Json,
        );
        assert_eq!(code, 1);
        let j: Json = serde_json::from_str(&text).unwrap();
        assert_eq!(
            j["error"],
            json!("datum at byte 1 cannot be resolved at / of the reader schema: Found string, expecting long")
        );
        assert_eq!(j["incompatibilities"][0]["kind"], json!("TYPE_MISMATCH"));
    }
}
