//! The registry over a [`Storage`]: layout format version 1 (see
//! `docs/schema-registry.md`). All writes that two processes may race on are
//! `put_if_absent`, retried with fresh state when lost.

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use super::{
    CompatIssue, CompatibilityLevel, Registered, RegistryError, Role, SchemaRegistry, Storage,
    SubjectVersion, VersionSelector,
};
use crate::compat::check_compatibility;
use crate::rabin;
use crate::schema::{AvroSchema, SchemaReference};

pub const FORMAT_VERSION: u32 = 1;
const FORMAT_KEY: &str = "registry.json";
const DEFAULT_LEVEL: CompatibilityLevel = CompatibilityLevel::Backward;
/// Bound on retries of lost conditional writes (each retry sees a newer state).
const MAX_RACE_RETRIES: usize = 1000;
/// Deepest chain of references followed when loading a schema (a guard
/// against a corrupt store whose references loop).
const MAX_REFERENCE_DEPTH: usize = 32;

#[derive(Serialize, Deserialize)]
struct FormatRecord {
    format_version: u32,
}

#[derive(Serialize, Deserialize)]
struct SchemaRecord {
    id: u32,
    /// `registered_json()`: with references, the referenced types by name.
    schema: String,
    /// Confluent references, resolved against this registry when loaded.
    /// Absent when empty, so records without references are unchanged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    references: Vec<SchemaReference>,
    /// The global id of each referenced version when registered: ids are
    /// never removed, so the schema stays loadable whatever is deleted later.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    reference_ids: Vec<u32>,
}

#[derive(Serialize, Deserialize)]
struct ContentRecord {
    id: u32,
}

#[derive(Serialize, Deserialize, Clone)]
struct VersionRecord {
    subject: String,
    version: u32,
    id: u32,
    deleted: bool,
}

#[derive(Serialize, Deserialize)]
struct LevelRecord {
    #[serde(rename = "compatibilityLevel")]
    level: CompatibilityLevel,
}

/// A schema registry kept in a [`Storage`] (a folder, memory, an object store).
pub struct Registry<S: Storage> {
    storage: S,
}

/// Subject names become one key segment: bytes outside `[A-Za-z0-9_-]` as `%XX`.
fn encode_subject(subject: &str) -> String {
    let mut out = String::with_capacity(subject.len());
    for b in subject.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn decode_subject(seg: &str) -> Option<String> {
    let bytes = seg.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = seg.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn id_key(id: u32) -> String {
    format!("ids/{id:010}.json")
}

/// Keyed by the normalized JSON, and the references when there are some
/// (the same text with other references is another schema, as in Confluent).
fn content_key(schema: &AvroSchema) -> String {
    let refs = schema.references();
    let fp = if refs.is_empty() {
        rabin::fingerprint64(schema.json().as_bytes())
    } else {
        let mut text = schema.json().to_string();
        text.push('\n');
        text.push_str(&serde_json::to_string(&refs).unwrap_or_default());
        rabin::fingerprint64(text.as_bytes())
    };
    format!("by-content/{fp:016x}.json")
}

fn versions_prefix(subject: &str) -> String {
    format!("subjects/{}/versions/", encode_subject(subject))
}

fn version_key(subject: &str, version: u32) -> String {
    format!("{}{version:010}.json", versions_prefix(subject))
}

fn level_key(subject: Option<&str>) -> String {
    match subject {
        None => "config/global.json".to_string(),
        Some(s) => format!("config/subjects/{}.json", encode_subject(s)),
    }
}

fn check_subject(subject: &str) -> Result<(), RegistryError> {
    if subject.is_empty() || subject.len() > 1024 || subject.chars().any(char::is_control) {
        return Err(RegistryError::InvalidSubject(subject.to_string()));
    }
    Ok(())
}

impl<S: Storage> Registry<S> {
    /// Opens the registry in `storage`, stamping the layout version on first use
    /// and refusing a layout from a newer release.
    pub fn new(storage: S) -> Result<Self, RegistryError> {
        let reg = Registry { storage };
        let stamp = serde_json::to_vec(&FormatRecord {
            format_version: FORMAT_VERSION,
        })
        .map_err(|e| RegistryError::Corrupt {
            key: FORMAT_KEY.into(),
            reason: e.to_string(),
        })?;
        reg.storage.put_if_absent(FORMAT_KEY, &stamp)?;
        let found: FormatRecord = reg
            .read(FORMAT_KEY)?
            .ok_or_else(|| RegistryError::Corrupt {
                key: FORMAT_KEY.into(),
                reason: "missing".into(),
            })?;
        if found.format_version != FORMAT_VERSION {
            return Err(RegistryError::Corrupt {
                key: FORMAT_KEY.into(),
                reason: format!(
                    "layout format version {} is not supported (this build reads {FORMAT_VERSION})",
                    found.format_version
                ),
            });
        }
        Ok(reg)
    }

    pub fn storage(&self) -> &S {
        &self.storage
    }

    fn read<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, RegistryError> {
        match self.storage.get(key)? {
            None => Ok(None),
            Some(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| RegistryError::Corrupt {
                    key: key.to_string(),
                    reason: e.to_string(),
                }),
        }
    }

    fn encode<T: Serialize>(key: &str, value: &T) -> Result<Vec<u8>, RegistryError> {
        serde_json::to_vec(value).map_err(|e| RegistryError::Corrupt {
            key: key.to_string(),
            reason: e.to_string(),
        })
    }

    /// Every version record of a subject, live and soft-deleted, by version.
    fn records(&self, subject: &str) -> Result<Vec<VersionRecord>, RegistryError> {
        let mut out = Vec::new();
        for key in self.storage.list(&versions_prefix(subject))? {
            if let Some(r) = self.read::<VersionRecord>(&key)? {
                out.push(r);
            }
        }
        out.sort_by_key(|r| r.version);
        Ok(out)
    }

    fn live_records(&self, subject: &str) -> Result<Vec<VersionRecord>, RegistryError> {
        Ok(self
            .records(subject)?
            .into_iter()
            .filter(|r| !r.deleted)
            .collect())
    }

    fn load_schema(&self, id: u32) -> Result<AvroSchema, RegistryError> {
        self.load_schema_at(id, 0)
    }

    fn load_schema_at(&self, id: u32, depth: usize) -> Result<AvroSchema, RegistryError> {
        let key = id_key(id);
        let rec: SchemaRecord = self
            .read(&key)?
            .ok_or_else(|| RegistryError::SchemaNotFound(id.to_string()))?;
        let corrupt = |reason: String| RegistryError::Corrupt {
            key: key.clone(),
            reason,
        };
        if depth > MAX_REFERENCE_DEPTH {
            return Err(corrupt(format!(
                "references nest deeper than {MAX_REFERENCE_DEPTH} levels"
            )));
        }
        if rec.reference_ids.len() != rec.references.len() {
            return Err(corrupt(format!(
                "{} references but {} reference ids",
                rec.references.len(),
                rec.reference_ids.len()
            )));
        }
        let mut refs = Vec::with_capacity(rec.references.len());
        for (r, id) in rec.references.iter().zip(&rec.reference_ids) {
            refs.push((r.clone(), self.load_schema_at(*id, depth + 1)?));
        }
        AvroSchema::parse_with_references(&rec.schema, &refs).map_err(|e| corrupt(e.to_string()))
    }

    /// Every reference must name a live version holding the very schema the
    /// candidate was parsed with; returns their global ids.
    fn check_references(&self, schema: &AvroSchema) -> Result<Vec<u32>, RegistryError> {
        let mut ids = Vec::new();
        for (r, referenced) in schema.referenced_schemas() {
            let v = self
                .select(&r.subject, VersionSelector::Number(r.version), false)
                .map_err(|e| RegistryError::InvalidReference {
                    reference: r.clone(),
                    reason: e.to_string(),
                })?;
            if self.load_schema(v.id)? != *referenced {
                return Err(RegistryError::InvalidReference {
                    reference: r.clone(),
                    reason: "the schema registered there differs from the one given".into(),
                });
            }
            ids.push(v.id);
        }
        Ok(ids)
    }

    /// Ids of the schemas that live versions use and that reference
    /// `subject`'s `version` (Confluent's `referencedby`).
    fn referencing_ids(&self, subject: &str, version: u32) -> Result<Vec<u32>, RegistryError> {
        let mut out = Vec::new();
        for s in self.subjects(false)? {
            for r in self.live_records(&s)? {
                if out.contains(&r.id) {
                    continue;
                }
                let rec: Option<SchemaRecord> = self.read(&id_key(r.id))?;
                if rec.is_some_and(|rec| {
                    rec.references
                        .iter()
                        .any(|x| x.subject == subject && x.version == version)
                }) {
                    out.push(r.id);
                }
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    /// Confluent refuses to delete a version that live schemas reference.
    fn refuse_if_referenced(&self, subject: &str, version: u32) -> Result<(), RegistryError> {
        let ids = self.referencing_ids(subject, version)?;
        if ids.is_empty() {
            return Ok(());
        }
        Err(RegistryError::ReferenceExists {
            subject: subject.to_string(),
            version,
            ids,
        })
    }

    fn to_subject_version(&self, r: &VersionRecord) -> Result<SubjectVersion, RegistryError> {
        Ok(SubjectVersion {
            subject: r.subject.clone(),
            version: r.version,
            id: r.id,
            schema: self.load_schema(r.id)?,
            deleted: r.deleted,
        })
    }

    fn find_id(&self, schema: &AvroSchema) -> Result<Option<u32>, RegistryError> {
        if let Some(c) = self.read::<ContentRecord>(&content_key(schema))? {
            if self.load_schema(c.id)? == *schema {
                return Ok(Some(c.id));
            }
            // A 64-bit fingerprint collision: fall back to a scan.
            for key in self.storage.list("ids/")? {
                if let Some(rec) = self.read::<SchemaRecord>(&key)? {
                    if rec.schema == schema.registered_json()
                        && rec.references == schema.references()
                    {
                        return Ok(Some(rec.id));
                    }
                }
            }
        }
        Ok(None)
    }

    /// The global id of `schema`, allocating one with conditional creates if new.
    fn ensure_id(&self, schema: &AvroSchema, reference_ids: &[u32]) -> Result<u32, RegistryError> {
        if let Some(id) = self.find_id(schema)? {
            return Ok(id);
        }
        let mut next = self
            .storage
            .list("ids/")?
            .iter()
            .filter_map(|k| {
                k.strip_prefix("ids/")?
                    .strip_suffix(".json")?
                    .parse::<u32>()
                    .ok()
            })
            .max()
            .unwrap_or(0)
            + 1;
        let rec_bytes = |id| {
            Self::encode(
                "ids/",
                &SchemaRecord {
                    id,
                    schema: schema.registered_json().to_string(),
                    references: schema.references(),
                    reference_ids: reference_ids.to_vec(),
                },
            )
        };
        let mut tries = 0;
        while !self
            .storage
            .put_if_absent(&id_key(next), &rec_bytes(next)?)?
        {
            next += 1;
            tries += 1;
            if tries > MAX_RACE_RETRIES {
                return Err(RegistryError::Corrupt {
                    key: "ids/".into(),
                    reason: "could not allocate a schema id".into(),
                });
            }
        }
        let ckey = content_key(schema);
        if self
            .storage
            .put_if_absent(&ckey, &Self::encode(&ckey, &ContentRecord { id: next })?)?
        {
            return Ok(next);
        }
        // Another process registered the same schema at once: use its id
        // (ours stays as an unused id, like gaps in Confluent's ids).
        Ok(self.find_id(schema)?.unwrap_or(next))
    }

    fn issues_against(
        &self,
        schema: &AvroSchema,
        level: CompatibilityLevel,
        existing: &[VersionRecord],
    ) -> Result<Vec<CompatIssue>, RegistryError> {
        let mut issues = Vec::new();
        for r in existing {
            let old = self.load_schema(r.id)?;
            if level.backward() {
                issues.extend(
                    check_compatibility(schema, &old)
                        .into_iter()
                        .map(|i| CompatIssue {
                            existing_version: r.version,
                            new_schema_role: Role::Reader,
                            incompatibility: i,
                        }),
                );
            }
            if level.forward() {
                issues.extend(
                    check_compatibility(&old, schema)
                        .into_iter()
                        .map(|i| CompatIssue {
                            existing_version: r.version,
                            new_schema_role: Role::Writer,
                            incompatibility: i,
                        }),
                );
            }
        }
        Ok(issues)
    }

    /// The live versions a registration is checked against under `level`.
    fn check_targets(level: CompatibilityLevel, live: &[VersionRecord]) -> &[VersionRecord] {
        if level == CompatibilityLevel::None {
            &[]
        } else if level.transitive() {
            live
        } else {
            &live[live.len().saturating_sub(1)..]
        }
    }

    fn select(
        &self,
        subject: &str,
        sel: VersionSelector,
        include_deleted: bool,
    ) -> Result<VersionRecord, RegistryError> {
        let all = self.records(subject)?;
        if all.is_empty() || (!include_deleted && all.iter().all(|r| r.deleted)) {
            return Err(RegistryError::SubjectNotFound(subject.to_string()));
        }
        let found = match sel {
            VersionSelector::Latest => all.iter().rev().find(|r| include_deleted || !r.deleted),
            VersionSelector::Number(n) => all
                .iter()
                .find(|r| r.version == n && (include_deleted || !r.deleted)),
        };
        found
            .cloned()
            .ok_or_else(|| RegistryError::VersionNotFound {
                subject: subject.to_string(),
                version: sel.to_string(),
            })
    }
}

impl<S: Storage> SchemaRegistry for Registry<S> {
    fn register(&self, subject: &str, schema: &AvroSchema) -> Result<Registered, RegistryError> {
        check_subject(subject)?;
        let reference_ids = self.check_references(schema)?;
        for _ in 0..MAX_RACE_RETRIES {
            let all = self.records(subject)?;
            let live: Vec<VersionRecord> = all.iter().filter(|r| !r.deleted).cloned().collect();
            for r in &live {
                if self.load_schema(r.id)? == *schema {
                    return Ok(Registered {
                        id: r.id,
                        version: r.version,
                    });
                }
            }
            let level = self.level(Some(subject))?;
            let issues = self.issues_against(schema, level, Self::check_targets(level, &live))?;
            if !issues.is_empty() {
                return Err(RegistryError::Incompatible {
                    subject: subject.to_string(),
                    level,
                    issues,
                });
            }
            let id = self.ensure_id(schema, &reference_ids)?;
            let version = all.last().map_or(1, |r| r.version + 1);
            let key = version_key(subject, version);
            let rec = VersionRecord {
                subject: subject.to_string(),
                version,
                id,
                deleted: false,
            };
            if self
                .storage
                .put_if_absent(&key, &Self::encode(&key, &rec)?)?
            {
                return Ok(Registered { id, version });
            }
            // Another writer took this version: re-check against the new state.
        }
        Err(RegistryError::Corrupt {
            key: versions_prefix(subject),
            reason: "too many concurrent registrations".into(),
        })
    }

    fn lookup(
        &self,
        subject: &str,
        schema: &AvroSchema,
        include_deleted: bool,
    ) -> Result<SubjectVersion, RegistryError> {
        let all = self.records(subject)?;
        if all.is_empty() || (!include_deleted && all.iter().all(|r| r.deleted)) {
            return Err(RegistryError::SubjectNotFound(subject.to_string()));
        }
        for r in all.iter().rev().filter(|r| include_deleted || !r.deleted) {
            let sv = self.to_subject_version(r)?;
            if sv.schema == *schema {
                return Ok(sv);
            }
        }
        Err(RegistryError::SchemaNotFound(format!(
            "{} under subject {subject:?}",
            schema.json()
        )))
    }

    fn subjects(&self, include_deleted: bool) -> Result<Vec<String>, RegistryError> {
        let mut out = Vec::new();
        for key in self.storage.list("subjects/")? {
            let Some(seg) = key
                .strip_prefix("subjects/")
                .and_then(|k| k.split('/').next())
            else {
                continue;
            };
            let Some(subject) = decode_subject(seg) else {
                continue;
            };
            if out.last() == Some(&subject) {
                continue;
            }
            if include_deleted || !self.live_records(&subject)?.is_empty() {
                out.push(subject);
            }
        }
        out.dedup();
        Ok(out)
    }

    fn versions(&self, subject: &str, include_deleted: bool) -> Result<Vec<u32>, RegistryError> {
        let all = self.records(subject)?;
        let vs: Vec<u32> = all
            .iter()
            .filter(|r| include_deleted || !r.deleted)
            .map(|r| r.version)
            .collect();
        if vs.is_empty() {
            return Err(RegistryError::SubjectNotFound(subject.to_string()));
        }
        Ok(vs)
    }

    fn version(
        &self,
        subject: &str,
        version: VersionSelector,
        include_deleted: bool,
    ) -> Result<SubjectVersion, RegistryError> {
        let r = self.select(subject, version, include_deleted)?;
        self.to_subject_version(&r)
    }

    fn schema_by_id(&self, id: u32) -> Result<AvroSchema, RegistryError> {
        self.load_schema(id)
    }

    fn id_usages(&self, id: u32) -> Result<Vec<(String, u32)>, RegistryError> {
        self.load_schema(id)?;
        let mut out = Vec::new();
        for subject in self.subjects(false)? {
            for r in self.live_records(&subject)? {
                if r.id == id {
                    out.push((subject.clone(), r.version));
                }
            }
        }
        Ok(out)
    }

    fn delete_version(
        &self,
        subject: &str,
        version: VersionSelector,
        permanent: bool,
    ) -> Result<u32, RegistryError> {
        let r = self.select(subject, version, permanent)?;
        self.refuse_if_referenced(subject, r.version)?;
        let key = version_key(subject, r.version);
        if permanent {
            if !r.deleted {
                return Err(RegistryError::VersionNotSoftDeleted {
                    subject: subject.to_string(),
                    version: r.version,
                });
            }
            self.storage.delete(&key)?;
        } else {
            let rec = VersionRecord {
                deleted: true,
                ..r.clone()
            };
            self.storage.put(&key, &Self::encode(&key, &rec)?)?;
        }
        Ok(r.version)
    }

    fn delete_subject(&self, subject: &str, permanent: bool) -> Result<Vec<u32>, RegistryError> {
        let all = self.records(subject)?;
        if all.is_empty() {
            return Err(RegistryError::SubjectNotFound(subject.to_string()));
        }
        for r in &all {
            self.refuse_if_referenced(subject, r.version)?;
        }
        if permanent {
            if all.iter().any(|r| !r.deleted) {
                return Err(RegistryError::SubjectNotSoftDeleted(subject.to_string()));
            }
            for r in &all {
                self.storage.delete(&version_key(subject, r.version))?;
            }
            self.storage.delete(&level_key(Some(subject)))?;
            return Ok(all.iter().map(|r| r.version).collect());
        }
        let live: Vec<&VersionRecord> = all.iter().filter(|r| !r.deleted).collect();
        if live.is_empty() {
            return Err(RegistryError::SubjectSoftDeleted(subject.to_string()));
        }
        for r in &live {
            let key = version_key(subject, r.version);
            let rec = VersionRecord {
                deleted: true,
                ..(*r).clone()
            };
            self.storage.put(&key, &Self::encode(&key, &rec)?)?;
        }
        Ok(live.iter().map(|r| r.version).collect())
    }

    fn level(&self, subject: Option<&str>) -> Result<CompatibilityLevel, RegistryError> {
        if let Some(s) = subject {
            if let Some(l) = self.subject_level(s)? {
                return Ok(l);
            }
        }
        Ok(self
            .read::<LevelRecord>(&level_key(None))?
            .map_or(DEFAULT_LEVEL, |r| r.level))
    }

    fn subject_level(&self, subject: &str) -> Result<Option<CompatibilityLevel>, RegistryError> {
        Ok(self
            .read::<LevelRecord>(&level_key(Some(subject)))?
            .map(|r| r.level))
    }

    fn set_level(
        &self,
        subject: Option<&str>,
        level: CompatibilityLevel,
    ) -> Result<(), RegistryError> {
        if let Some(s) = subject {
            check_subject(s)?;
        }
        let key = level_key(subject);
        self.storage
            .put(&key, &Self::encode(&key, &LevelRecord { level })?)?;
        Ok(())
    }

    fn delete_subject_level(&self, subject: &str) -> Result<CompatibilityLevel, RegistryError> {
        let old = self
            .subject_level(subject)?
            .ok_or_else(|| RegistryError::SubjectLevelNotFound(subject.to_string()))?;
        self.storage.delete(&level_key(Some(subject)))?;
        Ok(old)
    }

    fn referenced_by(
        &self,
        subject: &str,
        version: VersionSelector,
    ) -> Result<Vec<u32>, RegistryError> {
        let r = self.select(subject, version, false)?;
        self.referencing_ids(subject, r.version)
    }

    fn test_compatibility(
        &self,
        subject: &str,
        schema: &AvroSchema,
        against: Option<VersionSelector>,
    ) -> Result<Vec<CompatIssue>, RegistryError> {
        let level = self.level(Some(subject))?;
        match against {
            Some(sel) => {
                let r = self.select(subject, sel, false)?;
                if level == CompatibilityLevel::None {
                    return Ok(Vec::new());
                }
                self.issues_against(schema, level, &[r])
            }
            None => {
                let live = self.live_records(subject)?;
                self.issues_against(schema, level, Self::check_targets(level, &live))
            }
        }
    }
}
