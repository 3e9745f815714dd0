//! Field defaults: validation at parse time (Java 1.12's `isValidDefault`:
//! a union default may match any branch) and conversion to binary and to
//! values under the reader schema, done once when a resolver is compiled.

use std::collections::HashMap;

use apache_avro::types::Value;
use serde_json::Value as Json;

use crate::error::SchemaError;
use crate::schema::{Kind, NodeId, Tree};
use crate::values;
use crate::wire;

pub(crate) fn validate_all(tree: &Tree) -> Result<(), SchemaError> {
    for node in &tree.nodes {
        if let Kind::Record { named, fields } = &node.kind {
            for f in fields {
                if let Some(d) = &f.default {
                    if !is_valid(tree, f.schema, d, 0) {
                        return Err(SchemaError::InvalidDefault {
                            path: format!("{}.{}", named.fullname, f.name),
                            reason: format!(
                                "default {d} does not match the field's type {}",
                                tree.branch_name(f.schema)
                            ),
                        });
                    }
                }
            }
        }
    }
    Ok(())
}

const MAX_DEPTH: usize = 64;

/// Bytes and fixed defaults are strings whose code points are the bytes (0..=255).
fn latin1(s: &str) -> Option<Vec<u8>> {
    s.chars().map(|c| u8::try_from(u32::from(c)).ok()).collect()
}

fn is_valid(tree: &Tree, id: NodeId, d: &Json, depth: usize) -> bool {
    if depth > MAX_DEPTH {
        return false;
    }
    match &tree.node(id).kind {
        Kind::Null => d.is_null(),
        Kind::Boolean => d.is_boolean(),
        Kind::Int => d.as_i64().is_some_and(|v| i32::try_from(v).is_ok()),
        Kind::Long => d.is_i64(),
        Kind::Float | Kind::Double => d.is_number(),
        Kind::String => d.is_string(),
        Kind::Bytes => d.as_str().and_then(latin1).is_some(),
        Kind::Fixed { size, .. } => d
            .as_str()
            .and_then(latin1)
            .is_some_and(|b| b.len() == *size),
        Kind::Enum { symbols, .. } => d.as_str().is_some_and(|s| symbols.iter().any(|x| x == s)),
        Kind::Array(items) => d
            .as_array()
            .is_some_and(|a| a.iter().all(|x| is_valid(tree, *items, x, depth + 1))),
        Kind::Map(values) => d
            .as_object()
            .is_some_and(|m| m.values().all(|x| is_valid(tree, *values, x, depth + 1))),
        Kind::Record { fields, .. } => d.as_object().is_some_and(|m| {
            fields
                .iter()
                .all(|f| match m.get(&f.name).or(f.default.as_ref()) {
                    Some(v) => is_valid(tree, f.schema, v, depth + 1),
                    None => false,
                })
        }),
        Kind::Union(branches) => branches.iter().any(|b| is_valid(tree, *b, d, depth + 1)),
        Kind::Pending => false,
    }
}

/// The union branch a default belongs to: the first that matches (Avro 1.12).
fn union_branch(tree: &Tree, branches: &[NodeId], d: &Json) -> Option<(usize, NodeId)> {
    branches
        .iter()
        .enumerate()
        .find(|(_, b)| is_valid(tree, **b, d, 0))
        .map(|(i, b)| (i, *b))
}

fn bad(id: &str, d: &Json) -> SchemaError {
    SchemaError::InvalidDefault {
        path: id.to_string(),
        reason: format!("default {d} does not match its type"),
    }
}

/// Appends the Avro binary encoding of default `d` under node `id`.
pub(crate) fn encode(
    tree: &Tree,
    id: NodeId,
    d: &Json,
    out: &mut Vec<u8>,
) -> Result<(), SchemaError> {
    let here = tree.branch_name(id);
    match &tree.node(id).kind {
        Kind::Null => {}
        Kind::Boolean => out.push(u8::from(d.as_bool().ok_or_else(|| bad(&here, d))?)),
        Kind::Int | Kind::Long => wire::write_long(out, d.as_i64().ok_or_else(|| bad(&here, d))?),
        Kind::Float => {
            out.extend_from_slice(&(d.as_f64().ok_or_else(|| bad(&here, d))? as f32).to_le_bytes())
        }
        Kind::Double => {
            out.extend_from_slice(&d.as_f64().ok_or_else(|| bad(&here, d))?.to_le_bytes())
        }
        Kind::String => wire::write_bytes(out, d.as_str().ok_or_else(|| bad(&here, d))?.as_bytes()),
        Kind::Bytes => wire::write_bytes(
            out,
            &d.as_str().and_then(latin1).ok_or_else(|| bad(&here, d))?,
        ),
        Kind::Fixed { .. } => {
            out.extend_from_slice(&d.as_str().and_then(latin1).ok_or_else(|| bad(&here, d))?)
        }
        Kind::Enum { symbols, .. } => {
            let s = d.as_str().ok_or_else(|| bad(&here, d))?;
            let i = symbols
                .iter()
                .position(|x| x == s)
                .ok_or_else(|| bad(&here, d))?;
            wire::write_long(out, i as i64);
        }
        Kind::Array(items) => {
            let a = d.as_array().ok_or_else(|| bad(&here, d))?;
            if !a.is_empty() {
                wire::write_long(out, a.len() as i64);
                for x in a {
                    encode(tree, *items, x, out)?;
                }
            }
            out.push(0);
        }
        Kind::Map(values) => {
            let m = d.as_object().ok_or_else(|| bad(&here, d))?;
            if !m.is_empty() {
                wire::write_long(out, m.len() as i64);
                for (k, x) in m {
                    wire::write_bytes(out, k.as_bytes());
                    encode(tree, *values, x, out)?;
                }
            }
            out.push(0);
        }
        Kind::Record { fields, .. } => {
            let m = d.as_object().ok_or_else(|| bad(&here, d))?;
            for f in fields {
                let v = m
                    .get(&f.name)
                    .or(f.default.as_ref())
                    .ok_or_else(|| bad(&here, d))?;
                encode(tree, f.schema, v, out)?;
            }
        }
        Kind::Union(branches) => {
            let (i, b) = union_branch(tree, branches, d).ok_or_else(|| bad(&here, d))?;
            wire::write_long(out, i as i64);
            encode(tree, b, d, out)?;
        }
        Kind::Pending => return Err(bad(&here, d)),
    }
    Ok(())
}

/// The default as a value of node `id`, shaped like the decoder's output.
pub(crate) fn value(tree: &Tree, id: NodeId, d: &Json) -> Result<Value, SchemaError> {
    let here = tree.branch_name(id);
    let node = tree.node(id);
    let v = match &node.kind {
        Kind::Null => Value::Null,
        Kind::Boolean => Value::Boolean(d.as_bool().ok_or_else(|| bad(&here, d))?),
        Kind::Int => {
            let v = d
                .as_i64()
                .and_then(|v| i32::try_from(v).ok())
                .ok_or_else(|| bad(&here, d))?;
            values::int_value(v, node.logical.as_ref())
        }
        Kind::Long => values::long_value(
            d.as_i64().ok_or_else(|| bad(&here, d))?,
            node.logical.as_ref(),
        ),
        Kind::Float => Value::Float(d.as_f64().ok_or_else(|| bad(&here, d))? as f32),
        Kind::Double => Value::Double(d.as_f64().ok_or_else(|| bad(&here, d))?),
        Kind::String => values::string_value(
            d.as_str().ok_or_else(|| bad(&here, d))?.to_string(),
            node.logical.as_ref(),
        )
        .map_err(|_| bad(&here, d))?,
        Kind::Bytes => values::bytes_value(
            d.as_str().and_then(latin1).ok_or_else(|| bad(&here, d))?,
            node.logical.as_ref(),
        ),
        Kind::Fixed { size, .. } => values::fixed_value(
            *size,
            d.as_str().and_then(latin1).ok_or_else(|| bad(&here, d))?,
            node.logical.as_ref(),
        )
        .map_err(|_| bad(&here, d))?,
        Kind::Enum { symbols, .. } => {
            let s = d.as_str().ok_or_else(|| bad(&here, d))?;
            let i = symbols
                .iter()
                .position(|x| x == s)
                .ok_or_else(|| bad(&here, d))?;
            Value::Enum(i as u32, s.to_string())
        }
        Kind::Array(items) => Value::Array(
            d.as_array()
                .ok_or_else(|| bad(&here, d))?
                .iter()
                .map(|x| value(tree, *items, x))
                .collect::<Result<_, _>>()?,
        ),
        Kind::Map(values) => Value::Map(
            d.as_object()
                .ok_or_else(|| bad(&here, d))?
                .iter()
                .map(|(k, x)| Ok((k.clone(), value(tree, *values, x)?)))
                .collect::<Result<HashMap<_, _>, SchemaError>>()?,
        ),
        Kind::Record { fields, .. } => {
            let m = d.as_object().ok_or_else(|| bad(&here, d))?;
            let mut out = Vec::with_capacity(fields.len());
            for f in fields {
                let x = m
                    .get(&f.name)
                    .or(f.default.as_ref())
                    .ok_or_else(|| bad(&here, d))?;
                out.push((f.name.clone(), value(tree, f.schema, x)?));
            }
            Value::Record(out)
        }
        Kind::Union(branches) => {
            let (i, b) = union_branch(tree, branches, d).ok_or_else(|| bad(&here, d))?;
            Value::Union(i as u32, Box::new(value(tree, b, d)?))
        }
        Kind::Pending => return Err(bad(&here, d)),
    };
    Ok(v)
}
