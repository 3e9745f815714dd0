//! Schema history of a state and the resolution of old values to the
//! current schema (lazy migration on read).

use crate::descriptor::{StateDescriptor, StateMeta};
use crate::error::{Result, StateError};
use schema_registry::{check_compatibility, AvroSchema, Resolver};

/// The compiled schema side of one state: the current schema and one
/// resolver per older version, compiled once at open.
pub struct SchemaSet {
    state: String,
    current: AvroSchema,
    current_version: u16,
    /// `resolvers[v - 1]` turns version `v` into the current one; `None` for
    /// the current version itself (and identical schemas).
    resolvers: Vec<Option<Resolver>>,
}

impl SchemaSet {
    /// Reconciles a declared descriptor with the stored history: the same
    /// schema keeps the version, a new one must read every earlier version and
    /// becomes the next version. Returns the new meta to persist.
    pub fn reconcile(
        declared: &StateDescriptor,
        stored: Option<&StateMeta>,
    ) -> Result<(SchemaSet, StateMeta)> {
        let current = parse(&declared.name, &declared.value_schema)?;
        let mut schemas = match stored {
            Some(meta) => {
                if meta.descriptor.kind != declared.kind {
                    return Err(StateError::KindChanged {
                        name: declared.name.clone(),
                        stored: meta.descriptor.kind.name(),
                        declared: declared.kind.name(),
                    });
                }
                meta.schemas.clone()
            }
            None => Vec::new(),
        };
        let same_as_latest = schemas
            .last()
            .map(|s| parse(&declared.name, s).map(|p| p.json() == current.json()))
            .transpose()?
            .unwrap_or(false);
        if !same_as_latest {
            schemas.push(declared.value_schema.clone());
        }
        let meta = StateMeta {
            descriptor: declared.clone(),
            schemas,
        };
        let set = SchemaSet::compile(&meta)?;
        Ok((set, meta))
    }

    /// Compiles a stored history as is (tools reading a store or checkpoint).
    pub fn compile(meta: &StateMeta) -> Result<SchemaSet> {
        let name = &meta.descriptor.name;
        let last = meta.schemas.last().ok_or_else(|| StateError::Corrupt {
            state: name.clone(),
            what: "schema history",
            reason: "no schema version recorded".into(),
        })?;
        let current = parse(name, last)?;
        let current_version = meta.schemas.len() as u16;
        let mut resolvers = Vec::with_capacity(meta.schemas.len());
        for (i, json) in meta.schemas.iter().enumerate() {
            let version = (i + 1) as u16;
            if version == current_version {
                resolvers.push(None);
                continue;
            }
            let writer = parse(name, json)?;
            resolvers.push(compile_resolver(name, version, &writer, &current)?);
        }
        Ok(SchemaSet {
            state: name.clone(),
            current,
            current_version,
            resolvers,
        })
    }

    pub fn current(&self) -> &AvroSchema {
        &self.current
    }

    pub fn current_version(&self) -> u16 {
        self.current_version
    }

    /// Returns the payload under the current schema: borrowed when it is
    /// already current, resolved into `scratch` otherwise.
    pub fn to_current<'a>(
        &self,
        version: u16,
        payload: &'a [u8],
        scratch: &'a mut Vec<u8>,
    ) -> Result<&'a [u8]> {
        if version == self.current_version {
            return Ok(payload);
        }
        let slot = version
            .checked_sub(1)
            .and_then(|i| self.resolvers.get(usize::from(i)))
            .ok_or(StateError::UnknownSchemaVersion {
                state: self.state.clone(),
                version,
                known: self.resolvers.len(),
            })?;
        match slot {
            None => Ok(payload),
            Some(resolver) => {
                scratch.clear();
                resolver
                    .resolve_bytes(payload, scratch)
                    .map_err(|e| StateError::Corrupt {
                        state: self.state.clone(),
                        what: "value",
                        reason: format!("schema version {version}: {e}"),
                    })?;
                Ok(&scratch[..])
            }
        }
    }
}

fn parse(state: &str, json: &str) -> Result<AvroSchema> {
    AvroSchema::parse(json).map_err(|e| StateError::InvalidSchema {
        state: state.to_string(),
        reason: e.to_string(),
    })
}

fn compile_resolver(
    state: &str,
    version: u16,
    writer: &AvroSchema,
    reader: &AvroSchema,
) -> Result<Option<Resolver>> {
    let problems = check_compatibility(reader, writer);
    if !problems.is_empty() {
        return Err(StateError::IncompatibleSchema {
            state: state.to_string(),
            writer_version: version,
            reasons: problems
                .iter()
                .map(|p| with_field(reader.json(), &p.path, p))
                .collect(),
        });
    }
    let resolver =
        Resolver::compile(writer, reader).map_err(|e| StateError::IncompatibleSchema {
            state: state.to_string(),
            writer_version: version,
            reasons: vec![e.to_string()],
        })?;
    Ok((!resolver.is_identity()).then_some(resolver))
}

/// `message`, prefixed with the field that `path` names in the schema.
pub fn with_field(schema_json: &str, path: &str, message: impl std::fmt::Display) -> String {
    match field_names(schema_json, path) {
        Some(field) => format!("field '{field}': {message}"),
        None => message.to_string(),
    }
}

/// The dotted field names a schema path (`/fields/3/type/fields/0`) goes
/// through, so a refusal names `ts_ms`, not only `/fields/3`.
fn field_names(schema_json: &str, path: &str) -> Option<String> {
    let mut node: serde_json::Value = serde_json::from_str(schema_json).ok()?;
    let mut names = Vec::new();
    let mut segments = path.split('/').filter(|s| !s.is_empty()).peekable();
    while let Some(seg) = segments.next() {
        node = match (seg, &node) {
            ("fields", serde_json::Value::Object(o)) => {
                let index: usize = segments.next()?.parse().ok()?;
                let field = o.get("fields")?.get(index)?.clone();
                names.push(field.get("name")?.as_str()?.to_string());
                field
            }
            (_, serde_json::Value::Object(o)) => o.get(seg)?.clone(),
            (_, serde_json::Value::Array(a)) => a.get(seg.parse::<usize>().ok()?)?.clone(),
            _ => return None,
        };
    }
    (!names.is_empty()).then(|| names.join("."))
}

#[cfg(test)]
mod tests {
    use super::field_names;

    #[test]
    fn paths_name_their_fields() {
        let json = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"long"},
            {"name":"b","type":{"type":"record","name":"In","fields":[{"name":"c","type":"int"}]}}]}"#;
        assert_eq!(field_names(json, "/fields/0/type").as_deref(), Some("a"));
        assert_eq!(
            field_names(json, "/fields/1/type/fields/0").as_deref(),
            Some("b.c")
        );
        assert_eq!(field_names(json, "/"), None);
        assert_eq!(field_names(json, "/fields/9"), None);
    }
}
