//! The subset of Java object serialization (`java.io.ObjectOutputStream`)
//! that Flink SQL's RowDataSerializerSnapshot writes: one stream per field
//! holding a `LogicalType` object. We parse it to learn where it ends and
//! which type it is (class, `typeRoot`, precision and scale fields).

use crate::bytes::Reader;
use crate::error::{FlinkError, Result};
use std::rc::Rc;

const STREAM_MAGIC: u16 = 0xACED;
const BASE_HANDLE: i32 = 0x7E_0000;
/// Nested objects deeper than this are refused: hostile input cannot
/// exhaust the stack.
const MAX_DEPTH: usize = 32;

#[derive(Debug)]
struct ClassDesc {
    name: String,
    flags: u8,
    fields: Vec<(u8, String)>,
    sup: Option<Rc<ClassDesc>>,
}

/// A deserialized Java value, as far as we need it.
#[derive(Clone, Debug, PartialEq)]
pub enum JavaValue {
    Null,
    Int(i64),
    Float(f64),
    Str(String),
    Enum {
        class: String,
        constant: String,
    },
    Object {
        class: String,
        fields: Vec<(String, JavaValue)>,
    },
    Array(Vec<JavaValue>),
    Other,
}

impl JavaValue {
    pub fn field(&self, name: &str) -> Option<&JavaValue> {
        match self {
            JavaValue::Object { fields, .. } => {
                fields.iter().find(|(n, _)| n == name).map(|(_, v)| v)
            }
            _ => None,
        }
    }

    pub fn class(&self) -> &str {
        match self {
            JavaValue::Object { class, .. } | JavaValue::Enum { class, .. } => class,
            _ => "",
        }
    }
}

#[derive(Clone)]
enum Handle {
    Class(Rc<ClassDesc>),
    Value(JavaValue),
}

struct Parser<'r, 'a> {
    r: &'r mut Reader<'a>,
    handles: Vec<Handle>,
}

/// Reads one complete object stream (magic, version, one object).
pub fn read_object_stream(r: &mut Reader) -> Result<JavaValue> {
    let at = r.pos();
    if r.u16("java stream magic")? != STREAM_MAGIC || r.u16("java stream version")? != 5 {
        return Err(FlinkError::malformed(
            "java object stream",
            at,
            "bad magic or version",
        ));
    }
    Parser {
        r,
        handles: Vec::new(),
    }
    .content(0)
}

impl Parser<'_, '_> {
    fn malformed(&self, detail: impl Into<String>) -> FlinkError {
        FlinkError::malformed("java object stream", self.r.pos(), detail)
    }

    fn content(&mut self, depth: usize) -> Result<JavaValue> {
        if depth > MAX_DEPTH {
            return Err(self.malformed("nested too deep"));
        }
        match self.r.u8("java tag")? {
            0x70 => Ok(JavaValue::Null),
            0x71 => match self.reference()? {
                Handle::Value(v) => Ok(v),
                Handle::Class(_) => Ok(JavaValue::Other),
            },
            0x72 | 0x7D => {
                self.class_desc_body(depth)?;
                Ok(JavaValue::Other)
            }
            0x73 => self.object(depth),
            0x74 => {
                let s = JavaValue::Str(self.r.utf("java string")?);
                self.handles.push(Handle::Value(s.clone()));
                Ok(s)
            }
            0x75 => self.array(depth),
            0x7E => self.enum_constant(depth),
            0x77 => {
                let n = self.r.u8("block data length")? as usize;
                self.r.skip(n, "block data")?;
                Ok(JavaValue::Other)
            }
            t => Err(self.malformed(format!("unsupported tag {t:#04x}"))),
        }
    }

    fn reference(&mut self) -> Result<Handle> {
        let h = self.r.i32("java handle")?;
        let idx = h
            .checked_sub(BASE_HANDLE)
            .and_then(|i| usize::try_from(i).ok());
        idx.and_then(|i| self.handles.get(i).cloned())
            .ok_or_else(|| self.malformed(format!("dangling handle {h:#x}")))
    }

    fn class_desc(&mut self, depth: usize) -> Result<Option<Rc<ClassDesc>>> {
        match self.r.u8("class desc tag")? {
            0x70 => Ok(None),
            0x72 => self.class_desc_body(depth).map(Some),
            0x71 => match self.reference()? {
                Handle::Class(c) => Ok(Some(c)),
                Handle::Value(_) => Err(self.malformed("reference to a non-class")),
            },
            t => Err(self.malformed(format!("class desc tag {t:#04x}"))),
        }
    }

    fn class_desc_body(&mut self, depth: usize) -> Result<Rc<ClassDesc>> {
        let name = self.r.utf("class name")?;
        self.r.i64("serial version uid")?;
        let slot = self.handles.len();
        self.handles.push(Handle::Value(JavaValue::Other));
        let flags = self.r.u8("class flags")?;
        let n = self.r.u16("field count")? as usize;
        let mut fields = Vec::with_capacity(n.min(self.r.remaining()));
        for _ in 0..n {
            let code = self.r.u8("field type")?;
            let fname = self.r.utf("field name")?;
            if code == b'L' || code == b'[' {
                self.content(depth + 1)?; // the field's class name string
            }
            fields.push((code, fname));
        }
        self.skip_annotation(depth)?;
        let sup = self.class_desc(depth + 1)?;
        let desc = Rc::new(ClassDesc {
            name,
            flags,
            fields,
            sup,
        });
        if let Some(h) = self.handles.get_mut(slot) {
            *h = Handle::Class(desc.clone());
        }
        Ok(desc)
    }

    fn skip_annotation(&mut self, depth: usize) -> Result<()> {
        loop {
            if self.r.rest().first() == Some(&0x78) {
                self.r.skip(1, "end block")?;
                return Ok(());
            }
            self.content(depth + 1)?;
        }
    }

    fn object(&mut self, depth: usize) -> Result<JavaValue> {
        let desc = self
            .class_desc(depth + 1)?
            .ok_or_else(|| self.malformed("object without class"))?;
        let slot = self.handles.len();
        self.handles.push(Handle::Value(JavaValue::Other));
        let mut chain = Vec::new();
        let mut c = Some(desc.clone());
        while let Some(d) = c {
            c = d.sup.clone();
            chain.push(d);
        }
        let mut fields = Vec::new();
        for d in chain.iter().rev() {
            for (code, name) in &d.fields {
                fields.push((name.clone(), self.field_value(*code, depth)?));
            }
            if d.flags & 0x01 != 0 {
                self.skip_annotation(depth)?; // writeObject's extra data
            }
        }
        let v = JavaValue::Object {
            class: desc.name.clone(),
            fields,
        };
        if let Some(h) = self.handles.get_mut(slot) {
            *h = Handle::Value(v.clone());
        }
        Ok(v)
    }

    fn field_value(&mut self, code: u8, depth: usize) -> Result<JavaValue> {
        let r = &mut *self.r;
        Ok(match code {
            b'B' => JavaValue::Int(r.u8("byte")? as i8 as i64),
            b'Z' => JavaValue::Int(r.u8("boolean")? as i64),
            b'C' => JavaValue::Int(r.u16("char")? as i64),
            b'S' => JavaValue::Int(r.i16("short")? as i64),
            b'I' => JavaValue::Int(r.i32("int")? as i64),
            b'J' => JavaValue::Int(r.i64("long")?),
            b'F' => JavaValue::Float(f32::from_bits(r.u32("float")?) as f64),
            b'D' => JavaValue::Float(f64::from_bits(r.i64("double")? as u64)),
            b'L' | b'[' => self.content(depth + 1)?,
            c => return Err(self.malformed(format!("field type {c:#04x}"))),
        })
    }

    fn array(&mut self, depth: usize) -> Result<JavaValue> {
        let desc = self
            .class_desc(depth + 1)?
            .ok_or_else(|| self.malformed("array without class"))?;
        self.handles.push(Handle::Value(JavaValue::Other));
        let n = self.r.count(1, "array length")?;
        let code = desc.name.as_bytes().get(1).copied().unwrap_or(b'L');
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            items.push(self.field_value(code, depth)?);
        }
        Ok(JavaValue::Array(items))
    }

    fn enum_constant(&mut self, depth: usize) -> Result<JavaValue> {
        let desc = self
            .class_desc(depth + 1)?
            .ok_or_else(|| self.malformed("enum without class"))?;
        let slot = self.handles.len();
        self.handles.push(Handle::Value(JavaValue::Other));
        let constant = match self.content(depth + 1)? {
            JavaValue::Str(s) => s,
            _ => return Err(self.malformed("enum constant is not a string")),
        };
        let v = JavaValue::Enum {
            class: desc.name.clone(),
            constant,
        };
        if let Some(h) = self.handles.get_mut(slot) {
            *h = Handle::Value(v.clone());
        }
        Ok(v)
    }
}
