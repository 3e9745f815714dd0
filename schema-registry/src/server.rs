//! The Confluent Schema Registry REST API over any [`SchemaRegistry`].
//! Errors carry Confluent's `error_code`s; bodies use
//! `application/vnd.schemaregistry.v1+json`. Refusals add a structured
//! `incompatibilities` array next to Confluent's message strings.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value as Json};

use crate::registry::{
    parse_with_references, CompatIssue, CompatibilityLevel, RegistryError, SchemaRegistry,
    VersionSelector,
};
use crate::schema::AvroSchema;

pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";
/// Default cap on request bodies; larger ones get HTTP 413.
pub const DEFAULT_MAX_BODY: usize = 4 << 20;

#[derive(Clone)]
struct AppState {
    registry: Arc<dyn SchemaRegistry>,
    max_body: usize,
}

struct ApiError {
    status: StatusCode,
    code: u32,
    message: String,
    issues: Vec<CompatIssue>,
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        let issues = match &e {
            RegistryError::Incompatible { issues, .. } => issues.clone(),
            _ => Vec::new(),
        };
        let message = match &e {
            RegistryError::Incompatible { subject, level, issues } => format!(
                "Schema being registered is incompatible with an earlier schema for subject \"{subject}\", details: [{}]",
                confluent_messages(issues, *level).join(", ")
            ),
            other => other.to_string(),
        };
        ApiError {
            status: StatusCode::from_u16(e.http_status())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            code: e.error_code(),
            message,
            issues,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({"error_code": self.code, "message": self.message});
        if !self.issues.is_empty() {
            body["incompatibilities"] = json!(self.issues);
        }
        reply(self.status, body)
    }
}

fn reply(status: StatusCode, body: Json) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        body.to_string(),
    )
        .into_response()
}

fn ok(body: Json) -> Result<Response, ApiError> {
    Ok(reply(StatusCode::OK, body))
}

fn invalid(code: u32, message: impl Into<String>) -> ApiError {
    ApiError {
        status: StatusCode::UNPROCESSABLE_ENTITY,
        code,
        message: message.into(),
        issues: Vec::new(),
    }
}

/// Confluent-style verbose messages, one per reason.
fn confluent_messages(issues: &[CompatIssue], level: CompatibilityLevel) -> Vec<String> {
    issues
        .iter()
        .map(|i| {
            format!(
                "{{errorType:'{}', description:'{} at path '{}' (new schema as {:?} of version {})', additionalInfo:'{}'}}, {{oldSchemaVersion: {}}}, {{compatibility: '{}'}}",
                i.incompatibility.kind,
                i.incompatibility.kind,
                i.incompatibility.path,
                i.new_schema_role,
                i.existing_version,
                i.incompatibility.message,
                i.existing_version,
                level
            )
        })
        .collect()
}

async fn blocking<T: Send + 'static>(
    st: &AppState,
    f: impl FnOnce(&dyn SchemaRegistry) -> Result<T, RegistryError> + Send + 'static,
) -> Result<T, ApiError> {
    let reg = st.registry.clone();
    tokio::task::spawn_blocking(move || f(reg.as_ref()))
        .await
        .map_err(|e| ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: 50001,
            message: format!("registry task failed: {e}"),
            issues: Vec::new(),
        })?
        .map_err(ApiError::from)
}

async fn read_json(st: &AppState, body: Body) -> Result<Json, ApiError> {
    let bytes = to_bytes(body, st.max_body).await.map_err(|_| ApiError {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        code: 413,
        message: format!("request body is larger than {} bytes", st.max_body),
        issues: Vec::new(),
    })?;
    serde_json::from_slice(&bytes).map_err(|e| ApiError {
        status: StatusCode::BAD_REQUEST,
        code: 400,
        message: format!("request body is not JSON: {e}"),
        issues: Vec::new(),
    })
}

/// The `{"schema": "...", "schemaType": "AVRO", "references": [...]}` of
/// register, lookup and compatibility; references are resolved in the registry.
async fn read_schema(st: &AppState, body: Body) -> Result<AvroSchema, ApiError> {
    let v = read_json(st, body).await?;
    let refs = references_of(&v)?;
    if let Some(t) = v.get("schemaType").and_then(Json::as_str) {
        if t != "AVRO" {
            return Err(invalid(
                42201,
                format!("schema type {t:?} is not supported: only AVRO"),
            ));
        }
    }
    let text = v
        .get("schema")
        .and_then(Json::as_str)
        .ok_or_else(|| invalid(42201, "request has no \"schema\" string"))?;
    if refs.is_empty() {
        return AvroSchema::parse(text).map_err(|e| invalid(42201, format!("Invalid schema: {e}")));
    }
    let text = text.to_string();
    blocking(st, move |r| parse_with_references(r, &text, &refs)).await
}

/// Confluent's `references`: `[{"name": N, "subject": S, "version": V}]`,
/// `V` a version number or -1 (latest, pinned when stored).
fn references_of(v: &Json) -> Result<Vec<(String, String, VersionSelector)>, ApiError> {
    let items = match v.get("references") {
        None | Some(Json::Null) => return Ok(Vec::new()),
        Some(Json::Array(items)) => items,
        Some(other) => {
            return Err(invalid(
                42201,
                format!("\"references\" must be an array, found {other}"),
            ))
        }
    };
    items
        .iter()
        .map(|item| {
            let field = |k: &str| item.get(k).and_then(Json::as_str).map(str::to_string);
            let (Some(name), Some(subject)) = (field("name"), field("subject")) else {
                return Err(invalid(
                    42201,
                    format!("reference {item} needs string \"name\" and \"subject\""),
                ));
            };
            let version = match item.get("version") {
                Some(Json::Number(n)) => version_of(&n.to_string())?,
                Some(Json::String(s)) => version_of(s)?,
                _ => {
                    return Err(invalid(
                        42201,
                        format!("reference {item} needs a \"version\""),
                    ))
                }
            };
            Ok((name, subject, version))
        })
        .collect()
}

/// `"references"` of a reply, only when the schema has some (as Confluent).
fn with_references(mut body: Json, schema: &AvroSchema) -> Json {
    let refs = schema.references();
    if !refs.is_empty() {
        body["references"] = json!(refs);
    }
    body
}

fn flag(q: &HashMap<String, String>, name: &str) -> bool {
    q.get(name).is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

fn version_of(v: &str) -> Result<VersionSelector, ApiError> {
    v.parse()
        .map_err(|e: RegistryError| invalid(42202, e.to_string()))
}

fn id_of(id: &str) -> Result<u32, ApiError> {
    id.parse()
        .map_err(|_| ApiError::from(RegistryError::SchemaNotFound(id.to_string())))
}

/// Builds the router; `max_body` caps request bodies (HTTP 413 beyond).
pub fn router(registry: Arc<dyn SchemaRegistry>, max_body: usize) -> Router {
    let st = AppState { registry, max_body };
    Router::new()
        .route("/", get(|| async { ok(json!({})) }))
        .route("/schemas/types", get(|| async { ok(json!(["AVRO"])) }))
        .route("/subjects", get(list_subjects))
        .route("/subjects/{subject}", post(lookup).delete(delete_subject))
        .route(
            "/subjects/{subject}/versions",
            get(list_versions).post(register),
        )
        .route(
            "/subjects/{subject}/versions/{version}",
            get(get_version).delete(delete_version),
        )
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            get(get_version_schema),
        )
        .route(
            "/subjects/{subject}/versions/{version}/referencedby",
            get(referenced_by),
        )
        .route("/schemas/ids/{id}", get(get_by_id))
        .route("/schemas/ids/{id}/schema", get(get_by_id_raw))
        .route("/schemas/ids/{id}/versions", get(id_versions))
        .route("/schemas/ids/{id}/subjects", get(id_subjects))
        .route("/config", get(get_global_level).put(put_global_level))
        .route(
            "/config/{subject}",
            get(get_subject_level)
                .put(put_subject_level)
                .delete(delete_subject_level),
        )
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            post(compat_version),
        )
        .route(
            "/compatibility/subjects/{subject}/versions",
            post(compat_all),
        )
        .fallback(|| async {
            ApiError {
                status: StatusCode::NOT_FOUND,
                code: 404,
                message: "HTTP 404 Not Found".into(),
                issues: Vec::new(),
            }
        })
        .with_state(st)
}

/// Serves the API on `addr` until the process ends; calls `on_bound` with the bound address.
pub async fn serve(
    addr: SocketAddr,
    registry: Arc<dyn SchemaRegistry>,
    max_body: usize,
    on_bound: impl FnOnce(SocketAddr),
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    on_bound(listener.local_addr()?);
    axum::serve(listener, router(registry, max_body)).await
}

type Q = Query<HashMap<String, String>>;

async fn list_subjects(State(st): State<AppState>, Query(q): Q) -> Result<Response, ApiError> {
    let del = flag(&q, "deleted");
    ok(json!(blocking(&st, move |r| r.subjects(del)).await?))
}

async fn list_versions(
    State(st): State<AppState>,
    Path(s): Path<String>,
    Query(q): Q,
) -> Result<Response, ApiError> {
    let del = flag(&q, "deleted");
    ok(json!(blocking(&st, move |r| r.versions(&s, del)).await?))
}

async fn register(
    State(st): State<AppState>,
    Path(s): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let schema = read_schema(&st, body).await?;
    let reg = blocking(&st, move |r| r.register(&s, &schema)).await?;
    ok(json!({"id": reg.id, "version": reg.version}))
}

fn version_body(v: &crate::registry::SubjectVersion) -> Json {
    with_references(
        json!({"subject": v.subject, "version": v.version, "id": v.id,
            "schema": v.schema.registered_json(), "deleted": v.deleted}),
        &v.schema,
    )
}

async fn lookup(
    State(st): State<AppState>,
    Path(s): Path<String>,
    Query(q): Q,
    body: Body,
) -> Result<Response, ApiError> {
    let schema = read_schema(&st, body).await?;
    let del = flag(&q, "deleted");
    let v = blocking(&st, move |r| r.lookup(&s, &schema, del)).await?;
    ok(version_body(&v))
}

async fn get_version(
    State(st): State<AppState>,
    Path((s, v)): Path<(String, String)>,
    Query(q): Q,
) -> Result<Response, ApiError> {
    let sel = version_of(&v)?;
    let del = flag(&q, "deleted");
    let v = blocking(&st, move |r| r.version(&s, sel, del)).await?;
    ok(version_body(&v))
}

async fn get_version_schema(
    State(st): State<AppState>,
    Path((s, v)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let sel = version_of(&v)?;
    let v = blocking(&st, move |r| r.version(&s, sel, false)).await?;
    ok(serde_json::from_str(v.schema.registered_json()).unwrap_or(Json::Null))
}

async fn referenced_by(
    State(st): State<AppState>,
    Path((s, v)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let sel = version_of(&v)?;
    ok(json!(
        blocking(&st, move |r| r.referenced_by(&s, sel)).await?
    ))
}

async fn delete_version(
    State(st): State<AppState>,
    Path((s, v)): Path<(String, String)>,
    Query(q): Q,
) -> Result<Response, ApiError> {
    let sel = version_of(&v)?;
    let perm = flag(&q, "permanent");
    ok(json!(
        blocking(&st, move |r| r.delete_version(&s, sel, perm)).await?
    ))
}

async fn delete_subject(
    State(st): State<AppState>,
    Path(s): Path<String>,
    Query(q): Q,
) -> Result<Response, ApiError> {
    let perm = flag(&q, "permanent");
    ok(json!(
        blocking(&st, move |r| r.delete_subject(&s, perm)).await?
    ))
}

async fn get_by_id(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = id_of(&id)?;
    let schema = blocking(&st, move |r| r.schema_by_id(id)).await?;
    ok(with_references(
        json!({"schema": schema.registered_json()}),
        &schema,
    ))
}

async fn get_by_id_raw(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = id_of(&id)?;
    let schema = blocking(&st, move |r| r.schema_by_id(id)).await?;
    ok(serde_json::from_str(schema.registered_json()).unwrap_or(Json::Null))
}

async fn id_versions(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = id_of(&id)?;
    let uses = blocking(&st, move |r| r.id_usages(id)).await?;
    ok(Json::Array(
        uses.into_iter()
            .map(|(s, v)| json!({"subject": s, "version": v}))
            .collect(),
    ))
}

async fn id_subjects(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = id_of(&id)?;
    let mut subjects: Vec<String> = blocking(&st, move |r| r.id_usages(id))
        .await?
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    subjects.dedup();
    ok(json!(subjects))
}

async fn level_from_body(st: &AppState, body: Body) -> Result<CompatibilityLevel, ApiError> {
    let v = read_json(st, body).await?;
    let name = v
        .get("compatibility")
        .or_else(|| v.get("compatibilityLevel"))
        .and_then(Json::as_str)
        .ok_or_else(|| invalid(42203, "request has no \"compatibility\" string"))?;
    name.parse()
        .map_err(|e: RegistryError| invalid(42203, e.to_string()))
}

async fn get_global_level(State(st): State<AppState>) -> Result<Response, ApiError> {
    let l = blocking(&st, |r| r.level(None)).await?;
    ok(json!({"compatibilityLevel": l}))
}

async fn put_global_level(State(st): State<AppState>, body: Body) -> Result<Response, ApiError> {
    let l = level_from_body(&st, body).await?;
    blocking(&st, move |r| r.set_level(None, l)).await?;
    ok(json!({"compatibility": l}))
}

async fn get_subject_level(
    State(st): State<AppState>,
    Path(s): Path<String>,
    Query(q): Q,
) -> Result<Response, ApiError> {
    let fallback = flag(&q, "defaultToGlobal");
    let l = blocking(&st, move |r| match r.subject_level(&s)? {
        Some(l) => Ok(l),
        None if fallback => r.level(None),
        None => Err(RegistryError::SubjectLevelNotFound(s)),
    })
    .await?;
    ok(json!({"compatibilityLevel": l}))
}

async fn put_subject_level(
    State(st): State<AppState>,
    Path(s): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let l = level_from_body(&st, body).await?;
    blocking(&st, move |r| r.set_level(Some(&s), l)).await?;
    ok(json!({"compatibility": l}))
}

async fn delete_subject_level(
    State(st): State<AppState>,
    Path(s): Path<String>,
) -> Result<Response, ApiError> {
    let l = blocking(&st, move |r| r.delete_subject_level(&s)).await?;
    ok(json!({"compatibilityLevel": l}))
}

async fn compat_reply(
    st: &AppState,
    s: String,
    sel: Option<VersionSelector>,
    verbose: bool,
    schema: AvroSchema,
) -> Result<Response, ApiError> {
    let (issues, level) = blocking(st, move |r| {
        let issues = r.test_compatibility(&s, &schema, sel)?;
        Ok((issues, r.level(Some(&s))?))
    })
    .await?;
    let mut body = json!({"is_compatible": issues.is_empty()});
    if verbose {
        body["messages"] = json!(confluent_messages(&issues, level));
        body["incompatibilities"] = json!(issues);
    }
    ok(body)
}

async fn compat_version(
    State(st): State<AppState>,
    Path((s, v)): Path<(String, String)>,
    Query(q): Q,
    body: Body,
) -> Result<Response, ApiError> {
    let sel = version_of(&v)?;
    let schema = read_schema(&st, body).await?;
    compat_reply(&st, s, Some(sel), flag(&q, "verbose"), schema).await
}

async fn compat_all(
    State(st): State<AppState>,
    Path(s): Path<String>,
    Query(q): Q,
    body: Body,
) -> Result<Response, ApiError> {
    let schema = read_schema(&st, body).await?;
    compat_reply(&st, s, None, flag(&q, "verbose"), schema).await
}
