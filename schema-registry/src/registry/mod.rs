//! Subjects, versions and global ids, with Confluent's compatibility levels.
//! [`SchemaRegistry`] is implemented by [`Registry`] (over a [`Storage`]) and
//! by [`RemoteRegistry`] (any Confluent-compatible server).

mod local;
mod remote;
mod storage;

use std::fmt;
use std::str::FromStr;

pub use local::Registry;
pub use remote::RemoteRegistry;
pub use storage::{FolderStorage, MemoryStorage, Storage, StorageError};

use crate::compat::Incompatibility;
use crate::error::SchemaError;
use crate::schema::{AvroSchema, SchemaReference};

/// Confluent's compatibility levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CompatibilityLevel {
    Backward,
    BackwardTransitive,
    Forward,
    ForwardTransitive,
    Full,
    FullTransitive,
    None,
}

impl CompatibilityLevel {
    pub const ALL: [CompatibilityLevel; 7] = [
        CompatibilityLevel::Backward,
        CompatibilityLevel::BackwardTransitive,
        CompatibilityLevel::Forward,
        CompatibilityLevel::ForwardTransitive,
        CompatibilityLevel::Full,
        CompatibilityLevel::FullTransitive,
        CompatibilityLevel::None,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CompatibilityLevel::Backward => "BACKWARD",
            CompatibilityLevel::BackwardTransitive => "BACKWARD_TRANSITIVE",
            CompatibilityLevel::Forward => "FORWARD",
            CompatibilityLevel::ForwardTransitive => "FORWARD_TRANSITIVE",
            CompatibilityLevel::Full => "FULL",
            CompatibilityLevel::FullTransitive => "FULL_TRANSITIVE",
            CompatibilityLevel::None => "NONE",
        }
    }

    /// New schema must read old data.
    pub fn backward(self) -> bool {
        matches!(
            self,
            Self::Backward | Self::BackwardTransitive | Self::Full | Self::FullTransitive
        )
    }

    /// Old schemas must read new data.
    pub fn forward(self) -> bool {
        matches!(
            self,
            Self::Forward | Self::ForwardTransitive | Self::Full | Self::FullTransitive
        )
    }

    /// Checked against every live version instead of the latest only.
    pub fn transitive(self) -> bool {
        matches!(
            self,
            Self::BackwardTransitive | Self::ForwardTransitive | Self::FullTransitive
        )
    }
}

impl fmt::Display for CompatibilityLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CompatibilityLevel {
    type Err = RegistryError;
    fn from_str(s: &str) -> Result<Self, RegistryError> {
        Self::ALL
            .into_iter()
            .find(|l| l.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| RegistryError::InvalidLevel(s.to_string()))
    }
}

/// A version of a subject: a number or the latest live one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionSelector {
    Latest,
    Number(u32),
}

impl FromStr for VersionSelector {
    type Err = RegistryError;
    /// `latest`, `-1` (Confluent's alias for latest) or 1..=2^31-1.
    fn from_str(s: &str) -> Result<Self, RegistryError> {
        if s == "latest" || s == "-1" {
            return Ok(VersionSelector::Latest);
        }
        match s.parse::<u32>() {
            Ok(n) if n >= 1 && n <= i32::MAX as u32 => Ok(VersionSelector::Number(n)),
            _ => Err(RegistryError::InvalidVersion(s.to_string())),
        }
    }
}

impl fmt::Display for VersionSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VersionSelector::Latest => f.write_str("latest"),
            VersionSelector::Number(n) => write!(f, "{n}"),
        }
    }
}

/// One registered version of a subject.
#[derive(Debug, Clone)]
pub struct SubjectVersion {
    pub subject: String,
    pub version: u32,
    pub id: u32,
    pub schema: AvroSchema,
    pub deleted: bool,
}

/// Result of a registration: the global id and the subject version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Registered {
    pub id: u32,
    pub version: u32,
}

/// Which side the candidate schema plays in a failed check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The new schema must read data of the existing version (backward).
    Reader,
    /// The existing version must read data of the new schema (forward).
    Writer,
}

/// One reason a candidate schema is refused, naming the existing version it clashes with.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CompatIssue {
    pub existing_version: u32,
    pub new_schema_role: Role,
    #[serde(flatten)]
    pub incompatibility: Incompatibility,
}

impl fmt::Display for CompatIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (reader, writer) = match self.new_schema_role {
            Role::Reader => (
                "new schema".to_string(),
                format!("version {}", self.existing_version),
            ),
            Role::Writer => (
                format!("version {}", self.existing_version),
                "new schema".to_string(),
            ),
        };
        write!(
            f,
            "{} (reader: {reader}, writer: {writer})",
            self.incompatibility
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("subject {0:?} not found")]
    SubjectNotFound(String),
    #[error("version {version} of subject {subject:?} not found")]
    VersionNotFound { subject: String, version: String },
    #[error("schema {0} not found")]
    SchemaNotFound(String),
    #[error("subject {0:?} was soft-deleted")]
    SubjectSoftDeleted(String),
    #[error("subject {0:?} must be soft-deleted before it is permanently deleted")]
    SubjectNotSoftDeleted(String),
    #[error("version {version} of subject {subject:?} must be soft-deleted before it is permanently deleted")]
    VersionNotSoftDeleted { subject: String, version: u32 },
    #[error("version {version} of subject {subject:?} is referenced by schema(s) {ids:?}: delete those first")]
    ReferenceExists {
        subject: String,
        version: u32,
        ids: Vec<u32>,
    },
    #[error("subject {0:?} has no subject-level compatibility level")]
    SubjectLevelNotFound(String),
    #[error("invalid schema: {0}")]
    InvalidSchema(#[from] SchemaError),
    #[error("invalid schema reference {} to {:?} version {}: {reason}", .reference.name, .reference.subject, .reference.version)]
    InvalidReference {
        reference: SchemaReference,
        reason: String,
    },
    #[error("invalid version {0:?}: expected \"latest\", -1 or 1..2147483647")]
    InvalidVersion(String),
    #[error("invalid compatibility level {0:?}: expected one of BACKWARD, BACKWARD_TRANSITIVE, FORWARD, FORWARD_TRANSITIVE, FULL, FULL_TRANSITIVE, NONE")]
    InvalidLevel(String),
    #[error("invalid subject name {0:?}")]
    InvalidSubject(String),
    #[error("schema is incompatible with subject {subject:?} under {level}: {}", join(.issues))]
    Incompatible {
        subject: String,
        level: CompatibilityLevel,
        issues: Vec<CompatIssue>,
    },
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("stored record {key:?} is corrupt: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("registry at {url} answered HTTP {status} (error code {code}): {message}")]
    Remote {
        url: String,
        status: u16,
        code: u32,
        message: String,
    },
    #[error("cannot reach registry at {url}: {reason}")]
    Unreachable { url: String, reason: String },
}

fn join(issues: &[CompatIssue]) -> String {
    issues
        .iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

impl RegistryError {
    /// Confluent's `error_code` for this error.
    pub fn error_code(&self) -> u32 {
        match self {
            RegistryError::SubjectNotFound(_) => 40401,
            RegistryError::VersionNotFound { .. } => 40402,
            RegistryError::SchemaNotFound(_) => 40403,
            RegistryError::SubjectSoftDeleted(_) => 40404,
            RegistryError::SubjectNotSoftDeleted(_) => 40405,
            RegistryError::VersionNotSoftDeleted { .. } => 40407,
            RegistryError::SubjectLevelNotFound(_) => 40408,
            RegistryError::InvalidSchema(_) | RegistryError::InvalidReference { .. } => 42201,
            RegistryError::InvalidVersion(_) => 42202,
            RegistryError::InvalidLevel(_) => 42203,
            RegistryError::InvalidSubject(_) => 42208,
            RegistryError::ReferenceExists { .. } => 42206,
            RegistryError::Incompatible { .. } => 409,
            RegistryError::Remote { code, .. } => *code,
            RegistryError::Storage(_)
            | RegistryError::Corrupt { .. }
            | RegistryError::Unreachable { .. } => 50001,
        }
    }

    /// The HTTP status Confluent answers with.
    pub fn http_status(&self) -> u16 {
        match self.error_code() {
            409 => 409,
            c if (40400..40500).contains(&c) => 404,
            c if (42200..42300).contains(&c) => 422,
            413 => 413,
            _ => 500,
        }
    }
}

/// The registry operations the state store, the CLI and the REST server use.
pub trait SchemaRegistry: Send + Sync {
    /// Registers `schema` under `subject` if the subject's level allows it.
    /// Registering a schema already live under the subject returns its id and version.
    fn register(&self, subject: &str, schema: &AvroSchema) -> Result<Registered, RegistryError>;
    /// The version of `subject` holding exactly `schema` (normalized identity).
    fn lookup(
        &self,
        subject: &str,
        schema: &AvroSchema,
        include_deleted: bool,
    ) -> Result<SubjectVersion, RegistryError>;
    fn subjects(&self, include_deleted: bool) -> Result<Vec<String>, RegistryError>;
    fn versions(&self, subject: &str, include_deleted: bool) -> Result<Vec<u32>, RegistryError>;
    fn version(
        &self,
        subject: &str,
        version: VersionSelector,
        include_deleted: bool,
    ) -> Result<SubjectVersion, RegistryError>;
    fn schema_by_id(&self, id: u32) -> Result<AvroSchema, RegistryError>;
    /// (subject, version) pairs that use schema `id`.
    fn id_usages(&self, id: u32) -> Result<Vec<(String, u32)>, RegistryError>;
    /// Soft-deletes a version, or permanently deletes an already soft-deleted one.
    fn delete_version(
        &self,
        subject: &str,
        version: VersionSelector,
        permanent: bool,
    ) -> Result<u32, RegistryError>;
    /// Soft-deletes all versions, or permanently deletes an already soft-deleted subject.
    fn delete_subject(&self, subject: &str, permanent: bool) -> Result<Vec<u32>, RegistryError>;
    /// The level in force: the subject's own, else the global one (`None` subject: global).
    fn level(&self, subject: Option<&str>) -> Result<CompatibilityLevel, RegistryError>;
    /// The subject's own level, if set.
    fn subject_level(&self, subject: &str) -> Result<Option<CompatibilityLevel>, RegistryError>;
    fn set_level(
        &self,
        subject: Option<&str>,
        level: CompatibilityLevel,
    ) -> Result<(), RegistryError>;
    /// Removes the subject's own level; returns what it was.
    fn delete_subject_level(&self, subject: &str) -> Result<CompatibilityLevel, RegistryError>;
    /// Ids of the schemas (used by live versions) that reference `subject`'s
    /// `version` (Confluent's `GET /subjects/{s}/versions/{v}/referencedby`).
    fn referenced_by(
        &self,
        subject: &str,
        version: VersionSelector,
    ) -> Result<Vec<u32>, RegistryError>;
    /// Every reason `schema` would be refused under `subject`'s level, checked
    /// against `against` (one version), or as registration would (latest or all).
    fn test_compatibility(
        &self,
        subject: &str,
        schema: &AvroSchema,
        against: Option<VersionSelector>,
    ) -> Result<Vec<CompatIssue>, RegistryError>;
}

/// Parses `schema` with its Confluent references resolved in `registry`:
/// each `(name, subject, version)` must name a live version (`latest` is
/// pinned to its number, as stored).
pub fn parse_with_references(
    registry: &dyn SchemaRegistry,
    schema: &str,
    references: &[(String, String, VersionSelector)],
) -> Result<AvroSchema, RegistryError> {
    let mut resolved = Vec::with_capacity(references.len());
    for (name, subject, sel) in references {
        let invalid = |reason: String| RegistryError::InvalidReference {
            reference: SchemaReference {
                name: name.clone(),
                subject: subject.clone(),
                version: match sel {
                    VersionSelector::Number(n) => *n,
                    VersionSelector::Latest => 0,
                },
            },
            reason,
        };
        let v = registry
            .version(subject, *sel, false)
            .map_err(|e| invalid(e.to_string()))?;
        resolved.push((
            SchemaReference {
                name: name.clone(),
                subject: subject.clone(),
                version: v.version,
            },
            v.schema,
        ));
    }
    Ok(AvroSchema::parse_with_references(schema, &resolved)?)
}

/// Opens a registry by location: `http://` / `https://` URLs are remote
/// Confluent-compatible registries, `memory:` an empty in-memory one,
/// anything else a folder.
pub fn open_registry(location: &str) -> Result<Box<dyn SchemaRegistry>, RegistryError> {
    if location.starts_with("http://") || location.starts_with("https://") {
        return Ok(Box::new(RemoteRegistry::new(location)?));
    }
    if location == "memory:" || location == "memory://" {
        return Ok(Box::new(Registry::new(MemoryStorage::new())?));
    }
    let path = location.strip_prefix("file://").unwrap_or(location);
    Ok(Box::new(Registry::new(FolderStorage::open(path)?)?))
}
