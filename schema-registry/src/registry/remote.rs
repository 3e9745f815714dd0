//! A client for a Confluent-compatible REST registry (this crate's server,
//! Confluent's, Karapace, Apicurio's compatibility API).

use std::time::Duration;

use reqwest::blocking::{Client, Response};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Value as Json};

use super::{
    CompatIssue, CompatibilityLevel, Registered, RegistryError, Role, SchemaRegistry,
    SubjectVersion, VersionSelector,
};
use crate::compat::{Incompatibility, IncompatibilityKind};
use crate::schema::{AvroSchema, SchemaReference};

pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

pub struct RemoteRegistry {
    base: String,
    client: Client,
}

#[derive(Deserialize)]
struct VersionBody {
    subject: String,
    version: u32,
    id: u32,
    schema: String,
    #[serde(default)]
    references: Vec<SchemaReference>,
}

/// Deepest chain of references followed (a guard against a server whose
/// references loop).
const MAX_REFERENCE_DEPTH: usize = 32;

/// The request body of register, lookup and compatibility: the text as
/// registered and, when there are some, the references.
fn schema_body(schema: &AvroSchema) -> Json {
    let mut body = json!({"schema": schema.registered_json(), "schemaType": "AVRO"});
    let refs = schema.references();
    if !refs.is_empty() {
        body["references"] = json!(refs);
    }
    body
}

#[derive(Deserialize)]
struct ErrorBody {
    error_code: Option<u32>,
    message: Option<String>,
    #[serde(default)]
    incompatibilities: Vec<CompatIssueBody>,
}

#[derive(Deserialize)]
struct CompatIssueBody {
    existing_version: u32,
    new_schema_role: String,
    kind: IncompatibilityKind,
    path: String,
    message: String,
}

impl CompatIssueBody {
    fn into_issue(self) -> CompatIssue {
        CompatIssue {
            existing_version: self.existing_version,
            new_schema_role: if self.new_schema_role == "writer" {
                Role::Writer
            } else {
                Role::Reader
            },
            incompatibility: Incompatibility {
                kind: self.kind,
                path: self.path,
                message: self.message,
            },
        }
    }
}

/// Percent-encodes one URL path segment.
fn seg(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl RemoteRegistry {
    pub fn new(url: &str) -> Result<Self, RegistryError> {
        let client = Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| RegistryError::Unreachable {
                url: url.to_string(),
                reason: e.to_string(),
            })?;
        Ok(RemoteRegistry {
            base: url.trim_end_matches('/').to_string(),
            client,
        })
    }

    fn call(&self, method: Method, path: &str, body: Option<Json>) -> Result<Json, RegistryError> {
        let url = format!("{}{path}", self.base);
        let mut req = self
            .client
            .request(method, &url)
            .header("Accept", CONTENT_TYPE);
        if let Some(b) = body {
            req = req.header("Content-Type", CONTENT_TYPE).body(b.to_string());
        }
        let resp = req.send().map_err(|e| RegistryError::Unreachable {
            url: url.clone(),
            reason: e.to_string(),
        })?;
        self.answer(&url, resp)
    }

    fn answer(&self, url: &str, resp: Response) -> Result<Json, RegistryError> {
        let status = resp.status().as_u16();
        let text = resp.text().map_err(|e| RegistryError::Unreachable {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
        if (200..300).contains(&status) {
            return serde_json::from_str(&text).map_err(|e| RegistryError::Remote {
                url: url.to_string(),
                status,
                code: 50001,
                message: format!("unreadable answer {text:?}: {e}"),
            });
        }
        let body: Option<ErrorBody> = serde_json::from_str(&text).ok();
        let code = body
            .as_ref()
            .and_then(|b| b.error_code)
            .unwrap_or(u32::from(status));
        let message = body
            .as_ref()
            .and_then(|b| b.message.clone())
            .unwrap_or(text);
        if status == 409 {
            let issues = body.map(|b| b.incompatibilities).unwrap_or_default();
            if !issues.is_empty() {
                return Err(RegistryError::Incompatible {
                    subject: String::new(),
                    level: CompatibilityLevel::None,
                    issues: issues
                        .into_iter()
                        .map(CompatIssueBody::into_issue)
                        .collect(),
                });
            }
        }
        Err(RegistryError::Remote {
            url: url.to_string(),
            status,
            code,
            message,
        })
    }

    fn subject_version(&self, v: Json) -> Result<SubjectVersion, RegistryError> {
        let b: VersionBody = serde_json::from_value(v).map_err(|e| self.bad(e))?;
        Ok(SubjectVersion {
            schema: self.with_references(&b.schema, &b.references, 0)?,
            subject: b.subject,
            version: b.version,
            id: b.id,
            deleted: false,
        })
    }

    /// Parses a served schema, fetching what it references (and what those
    /// reference) from the server, soft-deleted versions included.
    fn with_references(
        &self,
        text: &str,
        refs: &[SchemaReference],
        depth: usize,
    ) -> Result<AvroSchema, RegistryError> {
        if refs.is_empty() {
            return Ok(AvroSchema::parse(text)?);
        }
        if depth > MAX_REFERENCE_DEPTH {
            return Err(self.bad(format!(
                "references nest deeper than {MAX_REFERENCE_DEPTH} levels"
            )));
        }
        let mut resolved = Vec::with_capacity(refs.len());
        for r in refs {
            let v = self.call(
                Method::GET,
                &format!(
                    "/subjects/{}/versions/{}?deleted=true",
                    seg(&r.subject),
                    r.version
                ),
                None,
            )?;
            let b: VersionBody = serde_json::from_value(v).map_err(|e| self.bad(e))?;
            let schema = self.with_references(&b.schema, &b.references, depth + 1)?;
            resolved.push((r.clone(), schema));
        }
        Ok(AvroSchema::parse_with_references(text, &resolved)?)
    }

    fn bad(&self, e: impl std::fmt::Display) -> RegistryError {
        RegistryError::Remote {
            url: self.base.clone(),
            status: 200,
            code: 50001,
            message: format!("unexpected answer: {e}"),
        }
    }

    fn level_of(&self, v: &Json) -> Result<CompatibilityLevel, RegistryError> {
        v.get("compatibilityLevel")
            .or_else(|| v.get("compatibility"))
            .and_then(Json::as_str)
            .ok_or_else(|| self.bad(format!("no compatibility level in {v}")))?
            .parse()
    }
}

fn deleted(include: bool) -> &'static str {
    if include {
        "?deleted=true"
    } else {
        ""
    }
}

fn permanent(p: bool) -> &'static str {
    if p {
        "?permanent=true"
    } else {
        ""
    }
}

impl SchemaRegistry for RemoteRegistry {
    fn register(&self, subject: &str, schema: &AvroSchema) -> Result<Registered, RegistryError> {
        let body = schema_body(schema);
        let v = self
            .call(
                Method::POST,
                &format!("/subjects/{}/versions", seg(subject)),
                Some(body),
            )
            .map_err(|e| match e {
                RegistryError::Incompatible { issues, .. } => RegistryError::Incompatible {
                    subject: subject.to_string(),
                    level: self
                        .level(Some(subject))
                        .unwrap_or(CompatibilityLevel::None),
                    issues,
                },
                other => other,
            })?;
        let id = v
            .get("id")
            .and_then(Json::as_u64)
            .ok_or_else(|| self.bad(format!("no id in {v}")))? as u32;
        let version = match v.get("version").and_then(Json::as_u64) {
            Some(n) => n as u32,
            None => self.lookup(subject, schema, false)?.version,
        };
        Ok(Registered { id, version })
    }

    fn lookup(
        &self,
        subject: &str,
        schema: &AvroSchema,
        include_deleted: bool,
    ) -> Result<SubjectVersion, RegistryError> {
        let body = schema_body(schema);
        let v = self.call(
            Method::POST,
            &format!("/subjects/{}{}", seg(subject), deleted(include_deleted)),
            Some(body),
        )?;
        self.subject_version(v)
    }

    fn subjects(&self, include_deleted: bool) -> Result<Vec<String>, RegistryError> {
        let v = self.call(
            Method::GET,
            &format!("/subjects{}", deleted(include_deleted)),
            None,
        )?;
        serde_json::from_value(v).map_err(|e| self.bad(e))
    }

    fn versions(&self, subject: &str, include_deleted: bool) -> Result<Vec<u32>, RegistryError> {
        let v = self.call(
            Method::GET,
            &format!(
                "/subjects/{}/versions{}",
                seg(subject),
                deleted(include_deleted)
            ),
            None,
        )?;
        serde_json::from_value(v).map_err(|e| self.bad(e))
    }

    fn version(
        &self,
        subject: &str,
        version: VersionSelector,
        include_deleted: bool,
    ) -> Result<SubjectVersion, RegistryError> {
        let v = self.call(
            Method::GET,
            &format!(
                "/subjects/{}/versions/{version}{}",
                seg(subject),
                deleted(include_deleted)
            ),
            None,
        )?;
        self.subject_version(v)
    }

    fn schema_by_id(&self, id: u32) -> Result<AvroSchema, RegistryError> {
        let v = self.call(Method::GET, &format!("/schemas/ids/{id}"), None)?;
        let s = v
            .get("schema")
            .and_then(Json::as_str)
            .ok_or_else(|| self.bad(format!("no schema in {v}")))?;
        let refs: Vec<SchemaReference> = match v.get("references") {
            None | Some(Json::Null) => Vec::new(),
            Some(r) => serde_json::from_value(r.clone()).map_err(|e| self.bad(e))?,
        };
        self.with_references(s, &refs, 0)
    }

    fn id_usages(&self, id: u32) -> Result<Vec<(String, u32)>, RegistryError> {
        #[derive(Deserialize)]
        struct Usage {
            subject: String,
            version: u32,
        }
        let v = self.call(Method::GET, &format!("/schemas/ids/{id}/versions"), None)?;
        let u: Vec<Usage> = serde_json::from_value(v).map_err(|e| self.bad(e))?;
        Ok(u.into_iter().map(|u| (u.subject, u.version)).collect())
    }

    fn delete_version(
        &self,
        subject: &str,
        version: VersionSelector,
        perm: bool,
    ) -> Result<u32, RegistryError> {
        let v = self.call(
            Method::DELETE,
            &format!(
                "/subjects/{}/versions/{version}{}",
                seg(subject),
                permanent(perm)
            ),
            None,
        )?;
        serde_json::from_value(v).map_err(|e| self.bad(e))
    }

    fn delete_subject(&self, subject: &str, perm: bool) -> Result<Vec<u32>, RegistryError> {
        let v = self.call(
            Method::DELETE,
            &format!("/subjects/{}{}", seg(subject), permanent(perm)),
            None,
        )?;
        serde_json::from_value(v).map_err(|e| self.bad(e))
    }

    fn level(&self, subject: Option<&str>) -> Result<CompatibilityLevel, RegistryError> {
        let path = match subject {
            Some(s) => format!("/config/{}?defaultToGlobal=true", seg(s)),
            None => "/config".to_string(),
        };
        let v = self.call(Method::GET, &path, None)?;
        self.level_of(&v)
    }

    fn subject_level(&self, subject: &str) -> Result<Option<CompatibilityLevel>, RegistryError> {
        match self.call(Method::GET, &format!("/config/{}", seg(subject)), None) {
            Ok(v) => Ok(Some(self.level_of(&v)?)),
            Err(RegistryError::Remote { code: 40408, .. })
            | Err(RegistryError::Remote { code: 40401, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn set_level(
        &self,
        subject: Option<&str>,
        level: CompatibilityLevel,
    ) -> Result<(), RegistryError> {
        let path = match subject {
            Some(s) => format!("/config/{}", seg(s)),
            None => "/config".to_string(),
        };
        self.call(
            Method::PUT,
            &path,
            Some(json!({"compatibility": level.as_str()})),
        )?;
        Ok(())
    }

    fn delete_subject_level(&self, subject: &str) -> Result<CompatibilityLevel, RegistryError> {
        let v = self.call(Method::DELETE, &format!("/config/{}", seg(subject)), None)?;
        self.level_of(&v)
    }

    fn referenced_by(
        &self,
        subject: &str,
        version: VersionSelector,
    ) -> Result<Vec<u32>, RegistryError> {
        let v = self.call(
            Method::GET,
            &format!("/subjects/{}/versions/{version}/referencedby", seg(subject)),
            None,
        )?;
        serde_json::from_value(v).map_err(|e| self.bad(e))
    }

    fn test_compatibility(
        &self,
        subject: &str,
        schema: &AvroSchema,
        against: Option<VersionSelector>,
    ) -> Result<Vec<CompatIssue>, RegistryError> {
        let path = match against {
            Some(v) => format!(
                "/compatibility/subjects/{}/versions/{v}?verbose=true",
                seg(subject)
            ),
            None => format!(
                "/compatibility/subjects/{}/versions?verbose=true",
                seg(subject)
            ),
        };
        let body = schema_body(schema);
        let v = self.call(Method::POST, &path, Some(body))?;
        if v.get("is_compatible").and_then(Json::as_bool) == Some(true) {
            return Ok(Vec::new());
        }
        // Our server adds structured reasons; other servers only give messages.
        let structured: Vec<CompatIssueBody> = v
            .get("incompatibilities")
            .cloned()
            .and_then(|x| serde_json::from_value(x).ok())
            .unwrap_or_default();
        if !structured.is_empty() {
            return Ok(structured
                .into_iter()
                .map(CompatIssueBody::into_issue)
                .collect());
        }
        Err(RegistryError::Remote {
            url: self.base.clone(),
            status: 200,
            code: 409,
            message: format!(
                "incompatible: {}",
                v.get("messages").cloned().unwrap_or(Json::Null)
            ),
        })
    }
}
