//! The reader/writer compatibility check, a port of Java Avro 1.12's
//! `SchemaCompatibility.ReaderWriterCompatibilityChecker`: same rules, same
//! incompatibility kinds, same locations (JSON-pointer-like paths), same
//! messages. Logical types are ignored, as in Java.

use std::collections::HashMap;
use std::fmt;

use crate::schema::{AvroSchema, Kind, NodeId, Tree};

/// Java's `SchemaIncompatibilityType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum IncompatibilityKind {
    NameMismatch,
    FixedSizeMismatch,
    MissingEnumSymbols,
    ReaderFieldMissingDefaultValue,
    TypeMismatch,
    MissingUnionBranch,
}

impl IncompatibilityKind {
    pub fn as_str(self) -> &'static str {
        match self {
            IncompatibilityKind::NameMismatch => "NAME_MISMATCH",
            IncompatibilityKind::FixedSizeMismatch => "FIXED_SIZE_MISMATCH",
            IncompatibilityKind::MissingEnumSymbols => "MISSING_ENUM_SYMBOLS",
            IncompatibilityKind::ReaderFieldMissingDefaultValue => {
                "READER_FIELD_MISSING_DEFAULT_VALUE"
            }
            IncompatibilityKind::TypeMismatch => "TYPE_MISMATCH",
            IncompatibilityKind::MissingUnionBranch => "MISSING_UNION_BRANCH",
        }
    }
}

impl fmt::Display for IncompatibilityKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One reason why a reader cannot read a writer's data.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Incompatibility {
    pub kind: IncompatibilityKind,
    /// Location in the reader schema, e.g. `/fields/3/type/symbols`; `/` is the root.
    pub path: String,
    pub message: String,
}

impl fmt::Display for Incompatibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {}: {}", self.kind, self.path, self.message)
    }
}

/// Every reason why `reader` cannot read data written with `writer`; empty means it can.
pub fn check_compatibility(reader: &AvroSchema, writer: &AvroSchema) -> Vec<Incompatibility> {
    let mut c = Checker {
        r: &reader.tree,
        w: &writer.tree,
        memo: HashMap::new(),
        location: Vec::new(),
    };
    let (_, found) = c.get(reader.tree.root, writer.tree.root);
    found
}

#[derive(Clone)]
enum Memo {
    InProgress,
    Done(bool, Vec<Incompatibility>),
}

struct Checker<'a> {
    r: &'a Tree,
    w: &'a Tree,
    memo: HashMap<(NodeId, NodeId), Memo>,
    location: Vec<String>,
}

type Outcome = (bool, Vec<Incompatibility>);

fn ok() -> Outcome {
    (true, Vec::new())
}

fn merge(a: &mut Outcome, b: Outcome) {
    a.0 &= b.0;
    a.1.extend(b.1);
}

impl<'a> Checker<'a> {
    fn incompatible(&self, kind: IncompatibilityKind, message: String) -> Outcome {
        let path = if self.location.is_empty() {
            "/".to_string()
        } else {
            let escaped: Vec<String> = self
                .location
                .iter()
                .map(|c| c.replace('~', "~0").replace('/', "~1"))
                .collect();
            format!("/{}", escaped.join("/"))
        };
        (
            false,
            vec![Incompatibility {
                kind,
                path,
                message,
            }],
        )
    }

    fn get_at(&mut self, token: &str, r: NodeId, w: NodeId) -> Outcome {
        self.location.push(token.to_string());
        let out = self.get(r, w);
        self.location.pop();
        out
    }

    fn get(&mut self, r: NodeId, w: NodeId) -> Outcome {
        match self.memo.get(&(r, w)) {
            // A cycle: compatible unless proven otherwise.
            Some(Memo::InProgress) => ok(),
            Some(Memo::Done(c, found)) => (*c, found.clone()),
            None => {
                self.memo.insert((r, w), Memo::InProgress);
                let out = self.calculate(r, w);
                self.memo.insert((r, w), Memo::Done(out.0, out.1.clone()));
                out
            }
        }
    }

    fn type_mismatch(&self, r: NodeId, w: NodeId) -> Outcome {
        self.incompatible(
            IncompatibilityKind::TypeMismatch,
            format!(
                "reader type: {} not compatible with writer type: {}",
                self.r.type_name(r),
                self.w.type_name(w)
            ),
        )
    }

    fn calculate(&mut self, r: NodeId, w: NodeId) -> Outcome {
        let (rk, wk) = (&self.r.node(r).kind, &self.w.node(w).kind);
        let same = self.r.type_name(r) == self.w.type_name(w);
        if same {
            return match (rk, wk) {
                (Kind::Array(ri), Kind::Array(wi)) => self.get_at("items", *ri, *wi),
                (Kind::Map(rv), Kind::Map(wv)) => self.get_at("values", *rv, *wv),
                (Kind::Fixed { size: rs, .. }, Kind::Fixed { size: ws, .. }) => {
                    let mut out = self.check_names(r, w);
                    self.location.push("size".into());
                    if rs != ws {
                        merge(
                            &mut out,
                            self.incompatible(
                                IncompatibilityKind::FixedSizeMismatch,
                                format!("expected: {ws}, found: {rs}"),
                            ),
                        );
                    }
                    self.location.pop();
                    out
                }
                (
                    Kind::Enum {
                        symbols: rsyms,
                        default: rdef,
                        ..
                    },
                    Kind::Enum { symbols: wsyms, .. },
                ) => {
                    let mut out = self.check_names(r, w);
                    self.location.push("symbols".into());
                    let mut missing: Vec<&String> =
                        wsyms.iter().filter(|s| !rsyms.contains(s)).collect();
                    missing.sort();
                    // Java 1.12: a reader enum default absorbs unknown symbols.
                    if !missing.is_empty() && rdef.is_none() {
                        let list: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
                        merge(
                            &mut out,
                            self.incompatible(
                                IncompatibilityKind::MissingEnumSymbols,
                                format!("[{}]", list.join(", ")),
                            ),
                        );
                    }
                    self.location.pop();
                    out
                }
                (Kind::Record { .. }, Kind::Record { .. }) => {
                    let mut out = self.check_names(r, w);
                    merge(&mut out, self.check_fields(r, w));
                    out
                }
                (Kind::Union(_), Kind::Union(wbranches)) => {
                    let mut out = ok();
                    for (i, wb) in wbranches.clone().into_iter().enumerate() {
                        self.location.push(i.to_string());
                        if !self.get(r, wb).0 {
                            let msg = format!(
                                "reader union lacking writer type: {}",
                                self.w.type_name(wb)
                            );
                            merge(
                                &mut out,
                                self.incompatible(IncompatibilityKind::MissingUnionBranch, msg),
                            );
                        }
                        self.location.pop();
                    }
                    out
                }
                _ => ok(),
            };
        }
        if let Kind::Union(wbranches) = wk {
            let mut out = ok();
            for wb in wbranches.clone() {
                merge(&mut out, self.get(r, wb));
            }
            return out;
        }
        let promotable = matches!(
            (rk, wk),
            (Kind::Long, Kind::Int)
                | (Kind::Float, Kind::Int | Kind::Long)
                | (Kind::Double, Kind::Int | Kind::Long | Kind::Float)
                | (Kind::Bytes, Kind::String)
                | (Kind::String, Kind::Bytes)
        );
        if promotable {
            return ok();
        }
        if let Kind::Union(rbranches) = rk {
            for rb in rbranches.clone() {
                if self.get(rb, w).0 {
                    return ok();
                }
            }
            let msg = format!("reader union lacking writer type: {}", self.w.type_name(w));
            return self.incompatible(IncompatibilityKind::MissingUnionBranch, msg);
        }
        self.type_mismatch(r, w)
    }

    /// Java's `schemaNameEquals`: unqualified names equal, or a reader alias is the writer's full name.
    fn check_names(&mut self, r: NodeId, w: NodeId) -> Outcome {
        let (Some(rn), Some(wn)) = (self.r.named(r), self.w.named(w)) else {
            return ok();
        };
        if names_match(rn, wn) {
            return ok();
        }
        self.location.push("name".into());
        let out = self.incompatible(
            IncompatibilityKind::NameMismatch,
            format!("expected: {}", wn.fullname),
        );
        self.location.pop();
        out
    }

    fn has_enum_default(&self, r: NodeId) -> bool {
        matches!(
            &self.r.node(r).kind,
            Kind::Enum {
                default: Some(_),
                ..
            }
        )
    }

    fn check_fields(&mut self, r: NodeId, w: NodeId) -> Outcome {
        let (Kind::Record { fields: rf, .. }, Kind::Record { fields: wf, .. }) =
            (&self.r.node(r).kind, &self.w.node(w).kind)
        else {
            return ok();
        };
        let mut out = ok();
        self.location.push("fields".into());
        for (pos, f) in rf.iter().enumerate() {
            self.location.push(pos.to_string());
            match lookup_writer_field(wf, &f.name, &f.aliases) {
                // Java's special case: a reader enum field without a field
                // default but with an enum default is checked against the
                // writer *record* itself (so it reports TYPE_MISMATCH at
                // `/fields/N/type` rather than a missing default).
                None if f.default.is_none() && self.has_enum_default(f.schema) => {
                    let o = self.get_at("type", f.schema, w);
                    merge(&mut out, o);
                }
                None if f.default.is_none() => {
                    merge(
                        &mut out,
                        self.incompatible(
                            IncompatibilityKind::ReaderFieldMissingDefaultValue,
                            f.name.clone(),
                        ),
                    );
                }
                None => {}
                Some(wi) => {
                    let o = self.get_at("type", f.schema, wf[wi].schema);
                    merge(&mut out, o);
                }
            }
            self.location.pop();
        }
        self.location.pop();
        out
    }
}

pub(crate) fn names_match(reader: &crate::schema::Named, writer: &crate::schema::Named) -> bool {
    reader.name == writer.name || reader.aliases.contains(&writer.fullname)
}

/// The writer field a reader field reads: by name, else by one of the reader field's aliases.
/// (Java throws when several match; we take the direct name first, then the first alias.)
pub(crate) fn lookup_writer_field(
    writer_fields: &[crate::schema::Field],
    name: &str,
    aliases: &[String],
) -> Option<usize> {
    writer_fields
        .iter()
        .position(|w| w.name == name)
        .or_else(|| {
            aliases
                .iter()
                .find_map(|a| writer_fields.iter().position(|w| w.name == *a))
        })
}
