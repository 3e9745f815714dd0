//! Our own parsed view of an Avro schema: an arena of nodes where named types
//! are shared (so recursion is an index cycle), keeping everything resolution
//! needs (aliases, defaults, logical types) that `apache_avro::Schema` either
//! drops or interprets differently from the Java reference.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use serde_json::{Map, Value as Json};

use crate::defaults;
use crate::error::DecodeError;
use crate::error::SchemaError;
use crate::rabin;
use crate::resolve::Resolver;

pub(crate) type NodeId = usize;

#[derive(Debug, Clone)]
pub(crate) struct Named {
    pub fullname: String,
    pub name: String,
    /// Aliases as full names (resolved against the type's namespace).
    pub aliases: Vec<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct Field {
    pub name: String,
    pub aliases: Vec<String>,
    pub schema: NodeId,
    pub default: Option<Json>,
    pub order: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) enum Kind {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    Array(NodeId),
    Map(NodeId),
    Union(Vec<NodeId>),
    Record {
        named: Named,
        fields: Vec<Field>,
    },
    Enum {
        named: Named,
        symbols: Vec<String>,
        default: Option<String>,
    },
    Fixed {
        named: Named,
        size: usize,
    },
    /// Placeholder while a named type's body is being parsed.
    Pending,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Logical {
    Decimal {
        precision: u64,
        scale: u64,
    },
    Uuid,
    Date,
    TimeMillis,
    TimeMicros,
    TimestampMillis,
    TimestampMicros,
    TimestampNanos,
    LocalTimestampMillis,
    LocalTimestampMicros,
    LocalTimestampNanos,
    Duration,
    /// A logical type we do not interpret: kept in the normalized JSON only.
    Other(String),
}

#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub kind: Kind,
    pub logical: Option<Logical>,
}

/// The parsed tree: `nodes[root]` is the schema.
#[derive(Debug)]
pub(crate) struct Tree {
    pub nodes: Vec<Node>,
    pub root: NodeId,
}

impl Tree {
    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id]
    }

    /// Java's `Schema.Type` name, used in incompatibility messages.
    pub fn type_name(&self, id: NodeId) -> &'static str {
        match &self.nodes[id].kind {
            Kind::Null => "NULL",
            Kind::Boolean => "BOOLEAN",
            Kind::Int => "INT",
            Kind::Long => "LONG",
            Kind::Float => "FLOAT",
            Kind::Double => "DOUBLE",
            Kind::Bytes => "BYTES",
            Kind::String => "STRING",
            Kind::Array(_) => "ARRAY",
            Kind::Map(_) => "MAP",
            Kind::Union(_) => "UNION",
            Kind::Record { .. } => "RECORD",
            Kind::Enum { .. } => "ENUM",
            Kind::Fixed { .. } => "FIXED",
            Kind::Pending => "PENDING",
        }
    }

    pub fn named(&self, id: NodeId) -> Option<&Named> {
        match &self.nodes[id].kind {
            Kind::Record { named, .. } | Kind::Enum { named, .. } | Kind::Fixed { named, .. } => {
                Some(named)
            }
            _ => None,
        }
    }

    /// The name of a union branch in the Avro JSON encoding.
    pub fn branch_name(&self, id: NodeId) -> String {
        match self.named(id) {
            Some(n) => n.fullname.clone(),
            None => self.type_name(id).to_ascii_lowercase(),
        }
    }
}

/// A Confluent schema reference: the schema of `subject`'s `version`, whose
/// named types the referencing schema uses by name (`name` is the full name
/// of the referenced type, Confluent's convention for Avro).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct SchemaReference {
    pub name: String,
    pub subject: String,
    pub version: u32,
}

/// A parsed, validated Avro schema. Cheap to clone.
#[derive(Clone)]
pub struct AvroSchema {
    pub(crate) tree: Arc<Tree>,
    normalized: Arc<str>,
    /// Confluent references this schema was parsed with, and their schemas.
    references: Arc<[(SchemaReference, AvroSchema)]>,
    /// With references: the normalized JSON with the referenced types by
    /// name only, as registered (`normalized` has them inlined).
    registered: Option<Arc<str>>,
    canonical: Arc<str>,
    fingerprint: u64,
    inner: Arc<apache_avro::Schema>,
    plain: Arc<OnceLock<Result<Arc<Resolver>, String>>>,
}

impl std::fmt::Debug for AvroSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AvroSchema")
            .field("json", &self.normalized)
            .field("fingerprint", &format_args!("{:016x}", self.fingerprint))
            .finish()
    }
}

/// Identity: the normalized JSON and, as in Confluent, the references
/// (the same text referencing another subject or version is another schema).
impl PartialEq for AvroSchema {
    fn eq(&self, other: &Self) -> bool {
        self.normalized == other.normalized
            && self.references.len() == other.references.len()
            && self
                .references
                .iter()
                .zip(other.references.iter())
                .all(|(a, b)| a.0 == b.0)
    }
}
impl Eq for AvroSchema {}

impl AvroSchema {
    /// Parses and validates an Avro schema (including every default value).
    pub fn parse(json: &str) -> Result<AvroSchema, SchemaError> {
        Self::parse_with_references(json, &[])
    }

    /// Parses a schema that uses named types of other schemas (Confluent
    /// references), as Confluent does: the referenced schemas, and theirs
    /// depth first, each once, are parsed before this one, so their named
    /// types are known by full name. `json()` is then self-contained (the
    /// referenced types inlined at first use); [`AvroSchema::registered_json`]
    /// keeps them by name, as registered.
    pub fn parse_with_references(
        json: &str,
        references: &[(SchemaReference, AvroSchema)],
    ) -> Result<AvroSchema, SchemaError> {
        let value: Json = serde_json::from_str(json)?;
        let mut parser = Parser::default();
        let mut seen = Vec::new();
        let mut order = Vec::new();
        flatten_references(references, &mut seen, &mut order);
        for (r, schema) in order {
            let text: Json = serde_json::from_str(schema.registered_json())?;
            parser
                .parse(&text, "", "")
                .map_err(|e| SchemaError::Reference {
                    subject: r.subject.clone(),
                    version: r.version,
                    reason: e.to_string(),
                })?;
        }
        let external = parser.nodes.len();
        let root = parser.parse(&value, "", "")?;
        let tree = Tree {
            nodes: parser.nodes,
            root,
        };
        defaults::validate_all(&tree)?;
        let normalized = normalized_json(&tree);
        let registered = (!references.is_empty()).then(|| {
            // Referenced types count as already defined: written by name.
            let mut defined = vec![false; tree.nodes.len()];
            defined[..external].iter_mut().for_each(|d| *d = true);
            Arc::from(to_json(&tree, tree.root, &mut defined, false).to_string())
        });
        let canonical = canonical_form(&tree);
        let inner = apache_avro::Schema::parse_str(&for_apache_avro(&tree))
            .map_err(|e| SchemaError::Avro(e.to_string()))?;
        Ok(AvroSchema {
            fingerprint: rabin::fingerprint64(canonical.as_bytes()),
            tree: Arc::new(tree),
            normalized: normalized.into(),
            references: references.to_vec().into(),
            registered,
            canonical: canonical.into(),
            inner: Arc::new(inner),
            plain: Arc::new(OnceLock::new()),
        })
    }

    /// Normalized JSON: the schema's identity. Full names everywhere (no
    /// `namespace` attribute), `doc` and unknown attributes dropped; defaults,
    /// aliases, `order`, logical types with their attributes kept.
    pub fn json(&self) -> &str {
        &self.normalized
    }

    /// The Confluent references this schema was parsed with (empty for most).
    pub fn references(&self) -> Vec<SchemaReference> {
        self.references.iter().map(|(r, _)| r.clone()).collect()
    }

    /// The referenced schemas, with their references.
    pub fn referenced_schemas(&self) -> &[(SchemaReference, AvroSchema)] {
        &self.references
    }

    /// The text a registry stores and serves for this schema: `json()`
    /// without references; with references, the normalized JSON that names
    /// the referenced types instead of defining them.
    pub fn registered_json(&self) -> &str {
        self.registered.as_deref().unwrap_or(&self.normalized)
    }

    /// Avro Parsing Canonical Form.
    pub fn canonical_form(&self) -> String {
        self.canonical.to_string()
    }

    /// CRC-64-AVRO (Rabin) fingerprint of the Parsing Canonical Form.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    pub fn inner(&self) -> &apache_avro::Schema {
        &self.inner
    }

    /// The plan that decodes this schema's own data, compiled on first use.
    pub fn plain_resolver(&self) -> Result<Arc<Resolver>, DecodeError> {
        self.plain
            .get_or_init(|| {
                Resolver::compile(self, self)
                    .map(Arc::new)
                    .map_err(|e| e.to_string())
            })
            .clone()
            .map_err(|reason| DecodeError::NoPlan { reason })
    }
}

/// Every referenced schema once (by subject and version), those it
/// references first: the order Confluent parses them in.
fn flatten_references<'a>(
    references: &'a [(SchemaReference, AvroSchema)],
    seen: &mut Vec<(&'a str, u32)>,
    out: &mut Vec<(&'a SchemaReference, &'a AvroSchema)>,
) {
    for (r, schema) in references {
        let key = (r.subject.as_str(), r.version);
        if seen.contains(&key) {
            continue;
        }
        seen.push(key);
        flatten_references(&schema.references, seen, out);
        out.push((r, schema));
    }
}

const PRIMITIVES: [&str; 8] = [
    "null", "boolean", "int", "long", "float", "double", "bytes", "string",
];

#[derive(Default)]
struct Parser {
    nodes: Vec<Node>,
    names: HashMap<String, NodeId>,
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn valid_fullname(name: &str) -> bool {
    name.split('.').all(valid_name)
}

fn qualify(name: &str, namespace: &str) -> String {
    if name.contains('.') || namespace.is_empty() {
        name.to_string()
    } else {
        format!("{namespace}.{name}")
    }
}

fn primitive_kind(name: &str) -> Option<Kind> {
    Some(match name {
        "null" => Kind::Null,
        "boolean" => Kind::Boolean,
        "int" => Kind::Int,
        "long" => Kind::Long,
        "float" => Kind::Float,
        "double" => Kind::Double,
        "bytes" => Kind::Bytes,
        "string" => Kind::String,
        _ => return None,
    })
}

impl Parser {
    fn push(&mut self, kind: Kind, logical: Option<Logical>) -> NodeId {
        self.nodes.push(Node { kind, logical });
        self.nodes.len() - 1
    }

    fn parse(&mut self, v: &Json, ns: &str, path: &str) -> Result<NodeId, SchemaError> {
        match v {
            Json::String(s) => self.parse_reference(s, ns, path),
            Json::Array(branches) => self.parse_union(branches, ns, path),
            Json::Object(obj) => self.parse_object(obj, ns, path),
            other => Err(SchemaError::invalid(
                path_or_root(path),
                format!("expected a type name, an object or an array, found {other}"),
            )),
        }
    }

    fn parse_reference(&mut self, s: &str, ns: &str, path: &str) -> Result<NodeId, SchemaError> {
        if let Some(kind) = primitive_kind(s) {
            return Ok(self.push(kind, None));
        }
        let qualified = qualify(s, ns);
        if let Some(id) = self.names.get(&qualified).or_else(|| self.names.get(s)) {
            return Ok(*id);
        }
        Err(SchemaError::invalid(
            path_or_root(path),
            format!("unknown type {s:?}"),
        ))
    }

    fn parse_union(
        &mut self,
        branches: &[Json],
        ns: &str,
        path: &str,
    ) -> Result<NodeId, SchemaError> {
        let mut ids = Vec::with_capacity(branches.len());
        let mut seen: Vec<String> = Vec::new();
        for (i, b) in branches.iter().enumerate() {
            let bpath = format!("{path}/{i}");
            let id = self.parse(b, ns, &bpath)?;
            let key = match &self.nodes[id].kind {
                Kind::Union(_) => {
                    return Err(SchemaError::invalid(
                        &bpath,
                        "unions may not immediately contain other unions",
                    ))
                }
                Kind::Record { named, .. }
                | Kind::Enum { named, .. }
                | Kind::Fixed { named, .. } => named.fullname.clone(),
                Kind::Pending => self
                    .names
                    .iter()
                    .find(|(_, v)| **v == id)
                    .map(|(k, _)| k.clone())
                    .unwrap_or_default(),
                _ => self.type_name_of(id).to_string(),
            };
            if seen.contains(&key) {
                return Err(SchemaError::invalid(
                    &bpath,
                    format!("duplicate {key:?} in union"),
                ));
            }
            seen.push(key);
            ids.push(id);
        }
        Ok(self.push(Kind::Union(ids), None))
    }

    fn type_name_of(&self, id: NodeId) -> &'static str {
        match &self.nodes[id].kind {
            Kind::Null => "null",
            Kind::Boolean => "boolean",
            Kind::Int => "int",
            Kind::Long => "long",
            Kind::Float => "float",
            Kind::Double => "double",
            Kind::Bytes => "bytes",
            Kind::String => "string",
            Kind::Array(_) => "array",
            Kind::Map(_) => "map",
            _ => "named",
        }
    }

    fn parse_object(
        &mut self,
        obj: &Map<String, Json>,
        ns: &str,
        path: &str,
    ) -> Result<NodeId, SchemaError> {
        let ty = obj
            .get("type")
            .ok_or_else(|| SchemaError::invalid(path_or_root(path), "object has no \"type\""))?;
        let tname = match ty {
            Json::String(s) => s.as_str(),
            // {"type": {...}} or {"type": [...]}: a wrapped type.
            other => return self.parse(other, ns, &format!("{path}/type")),
        };
        match tname {
            "record" | "error" => self.parse_record(obj, ns, path),
            "enum" => self.parse_enum(obj, ns, path),
            "fixed" => self.parse_fixed(obj, ns, path),
            "array" => {
                let items = obj.get("items").ok_or_else(|| {
                    SchemaError::invalid(path_or_root(path), "array has no \"items\"")
                })?;
                let item = self.parse(items, ns, &format!("{path}/items"))?;
                Ok(self.push(Kind::Array(item), None))
            }
            "map" => {
                let values = obj.get("values").ok_or_else(|| {
                    SchemaError::invalid(path_or_root(path), "map has no \"values\"")
                })?;
                let value = self.parse(values, ns, &format!("{path}/values"))?;
                Ok(self.push(Kind::Map(value), None))
            }
            other => match primitive_kind(other) {
                Some(kind) => {
                    let logical = logical_of(obj, &kind, None);
                    Ok(self.push(kind, logical))
                }
                None => self.parse_reference(other, ns, &format!("{path}/type")),
            },
        }
    }

    /// Registers a named type before its body is parsed, so the body may refer to it.
    fn declare(
        &mut self,
        obj: &Map<String, Json>,
        ns: &str,
        path: &str,
    ) -> Result<(Named, String, NodeId), SchemaError> {
        let name = obj.get("name").and_then(Json::as_str).ok_or_else(|| {
            SchemaError::invalid(path_or_root(path), "named type has no string \"name\"")
        })?;
        let own_ns = match obj.get("namespace") {
            Some(Json::String(s)) => s.as_str(),
            Some(Json::Null) | None => ns,
            Some(other) => {
                return Err(SchemaError::invalid(
                    &format!("{path}/namespace"),
                    format!("namespace must be a string, found {other}"),
                ))
            }
        };
        let fullname = qualify(name, own_ns);
        let (space, short) = match fullname.rsplit_once('.') {
            Some((s, n)) => (s.to_string(), n.to_string()),
            None => (String::new(), fullname.clone()),
        };
        if !valid_fullname(&fullname)
            || (!own_ns.is_empty() && !name.contains('.') && !valid_fullname(own_ns))
        {
            return Err(SchemaError::invalid(
                &format!("{path}/name"),
                format!("invalid name {fullname:?}"),
            ));
        }
        if primitive_kind(&short).is_some() && space.is_empty() {
            return Err(SchemaError::invalid(
                &format!("{path}/name"),
                format!("{short:?} is a primitive type name"),
            ));
        }
        if self.names.contains_key(&fullname) {
            return Err(SchemaError::invalid(
                &format!("{path}/name"),
                format!("type {fullname:?} is defined twice"),
            ));
        }
        let aliases = match obj.get("aliases") {
            None | Some(Json::Null) => Vec::new(),
            Some(Json::Array(items)) => {
                let mut out = Vec::new();
                for (i, a) in items.iter().enumerate() {
                    let a = a.as_str().filter(|a| valid_fullname(a)).ok_or_else(|| {
                        SchemaError::invalid(
                            &format!("{path}/aliases/{i}"),
                            "alias must be a valid name",
                        )
                    })?;
                    out.push(qualify(a, &space));
                }
                out
            }
            Some(_) => {
                return Err(SchemaError::invalid(
                    &format!("{path}/aliases"),
                    "aliases must be an array of names",
                ))
            }
        };
        let id = self.push(Kind::Pending, None);
        self.names.insert(fullname.clone(), id);
        Ok((
            Named {
                fullname,
                name: short,
                aliases,
            },
            space,
            id,
        ))
    }

    fn parse_record(
        &mut self,
        obj: &Map<String, Json>,
        ns: &str,
        path: &str,
    ) -> Result<NodeId, SchemaError> {
        let (named, space, id) = self.declare(obj, ns, path)?;
        let raw = obj.get("fields").and_then(Json::as_array).ok_or_else(|| {
            SchemaError::invalid(path_or_root(path), "record has no \"fields\" array")
        })?;
        let mut fields: Vec<Field> = Vec::with_capacity(raw.len());
        for (i, f) in raw.iter().enumerate() {
            let fpath = format!("{path}/fields/{i}");
            let f = f
                .as_object()
                .ok_or_else(|| SchemaError::invalid(&fpath, "field must be an object"))?;
            let name = f
                .get("name")
                .and_then(Json::as_str)
                .filter(|n| valid_name(n))
                .ok_or_else(|| {
                    SchemaError::invalid(&format!("{fpath}/name"), "field needs a valid \"name\"")
                })?;
            if fields.iter().any(|x| x.name == name) {
                return Err(SchemaError::invalid(
                    &format!("{fpath}/name"),
                    format!("duplicate field {name:?}"),
                ));
            }
            let ty = f.get("type").ok_or_else(|| {
                SchemaError::invalid(&fpath, format!("field {name:?} has no \"type\""))
            })?;
            let schema = self.parse(ty, &space, &format!("{fpath}/type"))?;
            let aliases = match f.get("aliases") {
                None | Some(Json::Null) => Vec::new(),
                Some(Json::Array(a)) => a
                    .iter()
                    .map(|x| x.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| {
                        SchemaError::invalid(
                            &format!("{fpath}/aliases"),
                            "field aliases must be strings",
                        )
                    })?,
                Some(_) => {
                    return Err(SchemaError::invalid(
                        &format!("{fpath}/aliases"),
                        "field aliases must be an array",
                    ))
                }
            };
            let order = match f.get("order") {
                None => None,
                Some(Json::String(o))
                    if matches!(o.as_str(), "ascending" | "descending" | "ignore") =>
                {
                    Some(o.clone()).filter(|o| o != "ascending")
                }
                Some(other) => {
                    return Err(SchemaError::invalid(
                        &format!("{fpath}/order"),
                        format!("invalid order {other}"),
                    ))
                }
            };
            fields.push(Field {
                name: name.to_string(),
                aliases,
                schema,
                default: f.get("default").cloned(),
                order,
            });
        }
        self.nodes[id].kind = Kind::Record { named, fields };
        Ok(id)
    }

    fn parse_enum(
        &mut self,
        obj: &Map<String, Json>,
        ns: &str,
        path: &str,
    ) -> Result<NodeId, SchemaError> {
        let (named, _, id) = self.declare(obj, ns, path)?;
        let raw = obj.get("symbols").and_then(Json::as_array).ok_or_else(|| {
            SchemaError::invalid(path_or_root(path), "enum has no \"symbols\" array")
        })?;
        let mut symbols: Vec<String> = Vec::with_capacity(raw.len());
        for (i, s) in raw.iter().enumerate() {
            let s = s.as_str().filter(|s| valid_name(s)).ok_or_else(|| {
                SchemaError::invalid(
                    &format!("{path}/symbols/{i}"),
                    "symbol must be a valid name",
                )
            })?;
            if symbols.iter().any(|x| x == s) {
                return Err(SchemaError::invalid(
                    &format!("{path}/symbols/{i}"),
                    format!("duplicate symbol {s:?}"),
                ));
            }
            symbols.push(s.to_string());
        }
        let default = match obj.get("default") {
            None | Some(Json::Null) => None,
            Some(Json::String(d)) if symbols.contains(d) => Some(d.clone()),
            Some(other) => {
                return Err(SchemaError::InvalidDefault {
                    path: format!("{path}/default"),
                    reason: format!("enum default {other} is not one of the symbols"),
                })
            }
        };
        self.nodes[id].kind = Kind::Enum {
            named,
            symbols,
            default,
        };
        Ok(id)
    }

    fn parse_fixed(
        &mut self,
        obj: &Map<String, Json>,
        ns: &str,
        path: &str,
    ) -> Result<NodeId, SchemaError> {
        let (named, _, id) = self.declare(obj, ns, path)?;
        let size = obj
            .get("size")
            .and_then(Json::as_u64)
            .and_then(|s| usize::try_from(s).ok())
            .ok_or_else(|| {
                SchemaError::invalid(
                    &format!("{path}/size"),
                    "fixed needs a non-negative integer \"size\"",
                )
            })?;
        let kind = Kind::Fixed { named, size };
        self.nodes[id].logical = logical_of(obj, &kind, Some(size));
        self.nodes[id].kind = kind;
        Ok(id)
    }
}

fn path_or_root(path: &str) -> &str {
    if path.is_empty() {
        "/"
    } else {
        path
    }
}

/// Logical type of a node; an invalid one falls back to the underlying type,
/// as the specification and Java say.
fn logical_of(obj: &Map<String, Json>, kind: &Kind, fixed_size: Option<usize>) -> Option<Logical> {
    let name = obj.get("logicalType")?.as_str()?;
    let l = match (name, kind) {
        ("decimal", Kind::Bytes | Kind::Fixed { .. }) => {
            let precision = obj.get("precision")?.as_u64().filter(|p| *p > 0)?;
            let scale = match obj.get("scale") {
                None => 0,
                Some(s) => s.as_u64()?,
            };
            if scale > precision {
                return None;
            }
            if let Some(size) = fixed_size {
                // Largest precision a signed two's-complement of `size` bytes holds.
                let max = ((8.0 * size as f64 - 1.0) * 2f64.log10()).floor();
                if precision as f64 > max {
                    return None;
                }
            }
            Logical::Decimal { precision, scale }
        }
        ("uuid", Kind::String) => Logical::Uuid,
        ("uuid", Kind::Fixed { size: 16, .. }) => Logical::Uuid,
        ("date", Kind::Int) => Logical::Date,
        ("time-millis", Kind::Int) => Logical::TimeMillis,
        ("time-micros", Kind::Long) => Logical::TimeMicros,
        ("timestamp-millis", Kind::Long) => Logical::TimestampMillis,
        ("timestamp-micros", Kind::Long) => Logical::TimestampMicros,
        ("timestamp-nanos", Kind::Long) => Logical::TimestampNanos,
        ("local-timestamp-millis", Kind::Long) => Logical::LocalTimestampMillis,
        ("local-timestamp-micros", Kind::Long) => Logical::LocalTimestampMicros,
        ("local-timestamp-nanos", Kind::Long) => Logical::LocalTimestampNanos,
        ("duration", Kind::Fixed { size: 12, .. }) => Logical::Duration,
        (
            "decimal"
            | "uuid"
            | "date"
            | "time-millis"
            | "time-micros"
            | "timestamp-millis"
            | "timestamp-micros"
            | "timestamp-nanos"
            | "local-timestamp-millis"
            | "local-timestamp-micros"
            | "local-timestamp-nanos"
            | "duration",
            _,
        ) => return None,
        (other, _) => Logical::Other(other.to_string()),
    };
    Some(l)
}

fn logical_name(l: &Logical) -> &str {
    match l {
        Logical::Decimal { .. } => "decimal",
        Logical::Uuid => "uuid",
        Logical::Date => "date",
        Logical::TimeMillis => "time-millis",
        Logical::TimeMicros => "time-micros",
        Logical::TimestampMillis => "timestamp-millis",
        Logical::TimestampMicros => "timestamp-micros",
        Logical::TimestampNanos => "timestamp-nanos",
        Logical::LocalTimestampMillis => "local-timestamp-millis",
        Logical::LocalTimestampMicros => "local-timestamp-micros",
        Logical::LocalTimestampNanos => "local-timestamp-nanos",
        Logical::Duration => "duration",
        Logical::Other(s) => s,
    }
}

/// The normalized JSON without the field aliases that name another field of
/// the same record. Java accepts such aliases (they only matter when
/// resolving, where the writer's fields are renamed through them), but
/// apache-avro keeps names and aliases in one lookup table and refuses a
/// field whose name an earlier field already claims as an alias. `inner()`
/// only encodes values, which finds a value's fields by name first, so the
/// dropped aliases change nothing there; our own tree keeps them all.
fn for_apache_avro(tree: &Tree) -> String {
    let mut defined = vec![false; tree.nodes.len()];
    let mut v = to_json(tree, tree.root, &mut defined, false);
    drop_crossing_field_aliases(&mut v);
    v.to_string()
}

fn drop_crossing_field_aliases(v: &mut Json) {
    match v {
        Json::Array(items) => items.iter_mut().for_each(drop_crossing_field_aliases),
        Json::Object(obj) => {
            if let Some(Json::Array(fields)) = obj.get_mut("fields") {
                let names: Vec<String> = fields
                    .iter()
                    .filter_map(|f| f.get("name").and_then(Json::as_str).map(str::to_string))
                    .collect();
                for f in fields.iter_mut() {
                    let Some(fo) = f.as_object_mut() else {
                        continue;
                    };
                    if let Some(Json::Array(aliases)) = fo.get_mut("aliases") {
                        aliases
                            .retain(|a| !a.as_str().is_some_and(|a| names.iter().any(|n| n == a)));
                        if aliases.is_empty() {
                            fo.remove("aliases");
                        }
                    }
                }
            }
            obj.values_mut().for_each(drop_crossing_field_aliases);
        }
        _ => {}
    }
}

/// Writes the normalized JSON: named types defined at first use, referenced by full name after.
fn normalized_json(tree: &Tree) -> String {
    let mut defined = vec![false; tree.nodes.len()];
    let v = to_json(tree, tree.root, &mut defined, false);
    v.to_string()
}

fn to_json(tree: &Tree, id: NodeId, defined: &mut [bool], canonical: bool) -> Json {
    let node = tree.node(id);
    let mut obj = Map::new();
    let logical = if canonical {
        None
    } else {
        node.logical.as_ref()
    };
    let primitive = |name: &str, obj: &mut Map<String, Json>| -> Json {
        match logical {
            None => Json::String(name.to_string()),
            Some(l) => {
                obj.insert("type".into(), name.into());
                add_logical(obj, l);
                Json::Object(std::mem::take(obj))
            }
        }
    };
    match &node.kind {
        Kind::Null => primitive("null", &mut obj),
        Kind::Boolean => primitive("boolean", &mut obj),
        Kind::Int => primitive("int", &mut obj),
        Kind::Long => primitive("long", &mut obj),
        Kind::Float => primitive("float", &mut obj),
        Kind::Double => primitive("double", &mut obj),
        Kind::Bytes => primitive("bytes", &mut obj),
        Kind::String => primitive("string", &mut obj),
        Kind::Pending => Json::Null,
        Kind::Array(items) => {
            obj.insert("type".into(), "array".into());
            obj.insert("items".into(), to_json(tree, *items, defined, canonical));
            Json::Object(obj)
        }
        Kind::Map(values) => {
            obj.insert("type".into(), "map".into());
            obj.insert("values".into(), to_json(tree, *values, defined, canonical));
            Json::Object(obj)
        }
        Kind::Union(branches) => Json::Array(
            branches
                .iter()
                .map(|b| to_json(tree, *b, defined, canonical))
                .collect(),
        ),
        Kind::Record { named, fields } => {
            if std::mem::replace(&mut defined[id], true) {
                return Json::String(named.fullname.clone());
            }
            obj.insert("name".into(), named.fullname.clone().into());
            obj.insert("type".into(), "record".into());
            let fields: Vec<Json> = fields
                .iter()
                .map(|f| {
                    let mut fo = Map::new();
                    fo.insert("name".into(), f.name.clone().into());
                    fo.insert("type".into(), to_json(tree, f.schema, defined, canonical));
                    if !canonical {
                        if let Some(d) = &f.default {
                            fo.insert("default".into(), d.clone());
                        }
                        if !f.aliases.is_empty() {
                            fo.insert("aliases".into(), f.aliases.clone().into());
                        }
                        if let Some(o) = &f.order {
                            fo.insert("order".into(), o.clone().into());
                        }
                    }
                    Json::Object(fo)
                })
                .collect();
            obj.insert("fields".into(), fields.into());
            if !canonical && !named.aliases.is_empty() {
                obj.insert("aliases".into(), named.aliases.clone().into());
            }
            Json::Object(obj)
        }
        Kind::Enum {
            named,
            symbols,
            default,
        } => {
            if std::mem::replace(&mut defined[id], true) {
                return Json::String(named.fullname.clone());
            }
            obj.insert("name".into(), named.fullname.clone().into());
            obj.insert("type".into(), "enum".into());
            obj.insert("symbols".into(), symbols.clone().into());
            if !canonical {
                if let Some(d) = default {
                    obj.insert("default".into(), d.clone().into());
                }
                if !named.aliases.is_empty() {
                    obj.insert("aliases".into(), named.aliases.clone().into());
                }
            }
            Json::Object(obj)
        }
        Kind::Fixed { named, size } => {
            if std::mem::replace(&mut defined[id], true) {
                return Json::String(named.fullname.clone());
            }
            obj.insert("name".into(), named.fullname.clone().into());
            obj.insert("type".into(), "fixed".into());
            obj.insert("size".into(), (*size as u64).into());
            if !canonical {
                if let Some(l) = logical {
                    add_logical(&mut obj, l);
                }
                if !named.aliases.is_empty() {
                    obj.insert("aliases".into(), named.aliases.clone().into());
                }
            }
            Json::Object(obj)
        }
    }
}

fn add_logical(obj: &mut Map<String, Json>, l: &Logical) {
    obj.insert("logicalType".into(), logical_name(l).into());
    if let Logical::Decimal { precision, scale } = l {
        obj.insert("precision".into(), (*precision).into());
        obj.insert("scale".into(), (*scale).into());
    }
}

/// Parsing Canonical Form: the spec's [STRIP]/[ORDER] rules. serde_json's
/// `Map` (without `preserve_order`) sorts keys, so we print by hand to keep
/// the spec's attribute order name, type, fields, symbols, items, values, size.
fn canonical_form(tree: &Tree) -> String {
    let mut defined = vec![false; tree.nodes.len()];
    let mut out = String::new();
    write_canonical(tree, tree.root, &mut defined, &mut out);
    out
}

fn write_canonical(tree: &Tree, id: NodeId, defined: &mut [bool], out: &mut String) {
    let quote = |s: &str| Json::String(s.to_string()).to_string();
    match &tree.node(id).kind {
        Kind::Array(items) => {
            out.push_str("{\"type\":\"array\",\"items\":");
            write_canonical(tree, *items, defined, out);
            out.push('}');
        }
        Kind::Map(values) => {
            out.push_str("{\"type\":\"map\",\"values\":");
            write_canonical(tree, *values, defined, out);
            out.push('}');
        }
        Kind::Union(branches) => {
            out.push('[');
            for (i, b) in branches.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(tree, *b, defined, out);
            }
            out.push(']');
        }
        Kind::Record { named, fields } => {
            if std::mem::replace(&mut defined[id], true) {
                out.push_str(&quote(&named.fullname));
                return;
            }
            out.push_str(&format!(
                "{{\"name\":{},\"type\":\"record\",\"fields\":[",
                quote(&named.fullname)
            ));
            for (i, f) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&format!("{{\"name\":{},\"type\":", quote(&f.name)));
                write_canonical(tree, f.schema, defined, out);
                out.push('}');
            }
            out.push_str("]}");
        }
        Kind::Enum { named, symbols, .. } => {
            if std::mem::replace(&mut defined[id], true) {
                out.push_str(&quote(&named.fullname));
                return;
            }
            let syms: Vec<String> = symbols.iter().map(|s| quote(s)).collect();
            out.push_str(&format!(
                "{{\"name\":{},\"type\":\"enum\",\"symbols\":[{}]}}",
                quote(&named.fullname),
                syms.join(",")
            ));
        }
        Kind::Fixed { named, size } => {
            if std::mem::replace(&mut defined[id], true) {
                out.push_str(&quote(&named.fullname));
                return;
            }
            out.push_str(&format!(
                "{{\"name\":{},\"type\":\"fixed\",\"size\":{size}}}",
                quote(&named.fullname)
            ));
        }
        _ => {
            let v = to_json(tree, id, defined, true);
            out.push_str(&v.to_string());
        }
    }
}

#[allow(dead_code)]
pub(crate) fn is_primitive_name(s: &str) -> bool {
    PRIMITIVES.contains(&s)
}
