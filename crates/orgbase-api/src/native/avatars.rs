//! Avatars: the seed's upload route, removal, and (for avatars on local disk) serving them.
//!
//! An upload is read as multipart with our own limits (the file's size, the whole body's), then
//! sniffed, decoded and re-encoded off the async threads, a few at a time; the files are stored
//! before the organization points at them, and removed again if it cannot be made to. Files an
//! organization no longer points at are removed once the new URL is committed.
use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use orgbase_avatar::{
    AvatarError, AvatarFiles, AvatarStorage, DiskStorage, Limits, S3Settings, S3Storage,
    StorageError, CONTENT_TYPE, SIZES,
};
use serde::Serialize;
use tokio::sync::Semaphore;
use utoipa::ToSchema;
use uuid::Uuid;

use orgbase_domain::{OrganizationId, ValidationErrors};

use crate::auth::Principal;
use crate::error::{ApiError, Problem};
use crate::extract::org_id;
use crate::{service, AppState};

/// Room for the multipart framing around the file (boundaries, part headers, small fields).
const MULTIPART_OVERHEAD: usize = 64 * 1024;

/// Where avatars go and what an upload may be.
#[derive(Clone, Debug)]
pub struct AvatarConfig {
    /// Local folder (used unless `s3` is set).
    pub dir: PathBuf,
    /// S3-compatible storage, when a bucket is configured.
    pub s3: Option<S3Settings>,
    pub limits: Limits,
}

impl Default for AvatarConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("avatars"),
            s3: None,
            limits: Limits::default(),
        }
    }
}

impl AvatarConfig {
    /// The largest upload request body: the file and its multipart framing.
    pub fn request_limit(&self) -> usize {
        self.limits.max_bytes + MULTIPART_OVERHEAD
    }
}

/// The avatar service: storage, limits, and the gates that keep uploads from starving the rest.
pub struct Avatars {
    pub storage: Arc<dyn AvatarStorage>,
    /// Set when avatars are on local disk: Orgbase serves them.
    pub disk: Option<DiskStorage>,
    pub limits: Limits,
    request_limit: usize,
    /// Uploads holding a body in memory at once.
    uploads: Arc<Semaphore>,
    /// Decodes run on these threads only, one a core: a client that hangs up cannot start
    /// another before its decode ends, and the decoders' memory is reused by a few threads
    /// instead of being retained by whichever of the runtime's many blocking threads ran one.
    decodes: DecodePool,
    /// The memory decodes may take together, in MiB, admitted by each image's peak estimate
    /// (the decoders' working memory is beyond image's own limit).
    memory: Arc<Semaphore>,
    /// Avatar changes of one organization are serialized (striped by id), so a removal of
    /// replaced files never races an upload of the same picture.
    org_locks: Vec<tokio::sync::Mutex<()>>,
}

/// The decode memory budget: room for one image at the largest default size, or several small.
const DECODE_MEMORY_MIB: u32 = 256;

/// An upload's place among those holding a body in memory (see [`Avatars::admit_upload`]):
/// taken by the idempotency layer for a keyed upload, which reads the body first, and passed on
/// to the route in the request's extensions.
#[derive(Clone)]
pub struct UploadAdmitted(#[allow(dead_code)] Arc<tokio::sync::OwnedSemaphorePermit>);

impl Avatars {
    /// Waits for a place among the uploads holding a body in memory.
    pub async fn admit_upload(&self) -> Result<UploadAdmitted, ApiError> {
        let permit = self
            .uploads
            .clone()
            .acquire_owned()
            .await
            .map_err(ApiError::internal)?;
        Ok(UploadAdmitted(Arc::new(permit)))
    }

    /// The largest upload request body.
    pub fn request_limit(&self) -> usize {
        self.request_limit
    }

    /// Disk under `config.dir` with URLs under `public_url`, or S3 when configured.
    pub fn new(config: &AvatarConfig, public_url: &str) -> Result<Self, StorageError> {
        let (storage, disk): (Arc<dyn AvatarStorage>, _) = match &config.s3 {
            Some(s3) => (Arc::new(S3Storage::new(s3)?), None),
            None => {
                let disk = DiskStorage::new(&config.dir, public_url);
                (Arc::new(disk.clone()), Some(disk))
            }
        };
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(Self {
            storage,
            disk,
            limits: config.limits,
            request_limit: config.request_limit(),
            uploads: Arc::new(Semaphore::new(cores * 8)),
            decodes: DecodePool::new(cores),
            memory: Arc::new(Semaphore::new(DECODE_MEMORY_MIB as usize)),
            org_locks: (0..64).map(|_| tokio::sync::Mutex::new(())).collect(),
        })
    }

    /// After a committed change of `org`'s avatar from `before` to `after`: if `before` was its
    /// own upload and is no longer used, its files go (in the background: the answer does not
    /// wait on storage).
    pub fn forget_replaced(
        &self,
        state: &AppState,
        org: OrganizationId,
        before: Option<&str>,
        after: Option<&str>,
    ) {
        if before == after {
            return;
        }
        let Some(files) = self.files_of(org, before) else {
            return;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let avatars = state.avatars.clone();
            let _serial = avatars.lock_of(org).lock().await;
            avatars.remove_unused(&state, org, &files).await;
        });
    }

    /// The files behind `url` when they are `org`'s own upload: never another organization's
    /// (whose public URL anyone may PATCH in as their own avatarUrl).
    fn files_of(&self, org: OrganizationId, url: Option<&str>) -> Option<AvatarFiles> {
        AvatarFiles::from_url(self.storage.public_base(), url?)
            .filter(|f| f.organization == org.as_uuid())
    }

    fn lock_of(&self, org: OrganizationId) -> &tokio::sync::Mutex<()> {
        let b = org.as_uuid().as_u128();
        &self.org_locks[(b % self.org_locks.len() as u128) as usize]
    }

    /// Removes `files` unless the organization points at them again (holding its lock).
    async fn remove_unused(&self, state: &AppState, org: OrganizationId, files: &AvatarFiles) {
        let url = self.storage.url(&files.key(SIZES[0]));
        match crate::service::stored_avatar_url(state, org).await {
            Ok(u) if u.as_deref() == Some(url.as_str()) => return,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "an avatar's files were kept: the organization could not be read");
                return;
            }
        }
        self.remove(files).await;
    }

    /// Removes every size of `files`; failures are logged (an orphan file costs only space).
    async fn remove(&self, files: &AvatarFiles) {
        for key in files.keys() {
            if let Err(e) = self.storage.delete(&key).await {
                tracing::warn!(error = %e, key, "an avatar file could not be removed");
            }
        }
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// A few threads of their own for decoding, fed in order.
struct DecodePool {
    jobs: std::sync::mpsc::Sender<Job>,
}

impl DecodePool {
    fn new(threads: usize) -> Self {
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        let queue = Arc::new(std::sync::Mutex::new(queue));
        for i in 0..threads {
            let queue = queue.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("avatar-decode-{i}"))
                .spawn(move || loop {
                    let job = match queue.lock() {
                        Ok(q) => q.recv(),
                        Err(_) => return,
                    };
                    match job {
                        // A panic in a decoder is caught: the thread goes on with the next.
                        Ok(job) => {
                            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                        }
                        Err(_) => return,
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "an avatar decoding thread could not start");
            }
        }
        Self { jobs }
    }

    /// Runs `f` on the pool; its answer, or a 500 when it panicked.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Box::new(move || {
                let _ = tx.send(f());
            }))
            .map_err(|_| ApiError::internal("the avatar decoding threads are gone"))?;
        rx.await
            .map_err(|_| ApiError::internal("an avatar decode panicked"))
    }
}

/// The answer to an upload.
#[derive(Debug, Serialize, ToSchema)]
pub struct UploadAnswer {
    #[schema(example = true)]
    pub success: bool,
    #[schema(example = "File uploaded successfully")]
    pub message: String,
    pub data: UploadedAvatar,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UploadedAvatar {
    /// The organization's `avatarUrl` now: the large size.
    pub avatar_url: String,
    /// Every stored size (pixels, square) and its URL.
    pub sizes: Vec<AvatarSize>,
    /// The organization's version after the upload.
    pub version: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AvatarSize {
    pub size: u32,
    pub url: String,
}

/// Multipart form with one file.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct AvatarUpload {
    /// PNG, JPEG, WebP or GIF (its first frame); the bytes decide, not the declared type.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// Upload an organization's avatar.
///
/// The image is cropped to a centred square and stored as JPEG at 512 and 128 pixels, without
/// its metadata; `avatarUrl` becomes the 512-pixel one. The type is read from the bytes.
#[utoipa::path(
    post, path = "/api/organizations/{organization}/upload-avatar", operation_id = "uploadAvatar", tag = "Organizations",
    params(("organization" = Uuid, Path, description = "The organization ID")),
    request_body(content = AvatarUpload, content_type = "multipart/form-data"),
    responses(
        (status = 200, description = "File uploaded successfully", body = UploadAnswer),
        (status = 400, description = "A malformed multipart body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid credential", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not allowed to update this organization", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organization within reach", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The organization is deleted", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Larger than the upload limit", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not multipart, or not a PNG, JPEG, WebP or GIF image", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No file, several files, an empty file, or an image that cannot be used", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Avatar storage is failing; nothing was changed", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn upload(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    admitted: Option<axum::Extension<UploadAdmitted>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let id = org_id(&id)?;
    // Reach and permission first: a stranger's body is not even read.
    let before = service::load_with(&state, &who, id, orgbase_domain::Permission::OrgUpdate)
        .await?
        .org;
    if before.is_deleted() {
        return Err(ApiError::Conflict {
            code: "organization_deleted",
            detail: "a deleted organization cannot be changed; restore it first".into(),
        });
    }
    let avatars = state.avatars.clone();
    // A keyed upload was admitted by the idempotency layer, which read its body.
    let _upload = match admitted {
        Some(axum::Extension(a)) => a,
        None => avatars.admit_upload().await?,
    };
    let file = read_file(
        &headers,
        body,
        avatars.request_limit,
        avatars.limits.max_bytes,
    )
    .await?;

    // The header first: admitted against the memory budget by what decoding it will take.
    let (format, width, height) = orgbase_avatar::probe(&file, &avatars.limits).map_err(refusal)?;
    let mib = orgbase_avatar::peak_memory(format, width, height).div_ceil(1024 * 1024);
    let mib = u32::try_from(mib)
        .unwrap_or(u32::MAX)
        .clamp(1, DECODE_MEMORY_MIB);
    let memory = avatars
        .memory
        .clone()
        .acquire_many_owned(mib)
        .await
        .map_err(ApiError::internal)?;
    let limits = avatars.limits;
    let processed = avatars
        .decodes
        .run(move || {
            let _held = memory;
            orgbase_avatar::process(&file, &limits)
        })
        .await?
        .map_err(refusal)?;

    let files = AvatarFiles::new(id.as_uuid(), processed.hash.clone());
    let url = avatars.storage.url(&files.key(SIZES[0]));
    let _serial = avatars.lock_of(id).lock().await;
    // Under the organization's lock: what it points at now.
    let already_ours = crate::service::stored_avatar_url(&state, id)
        .await?
        .as_deref()
        == Some(url.as_str());
    for (size, bytes) in processed.files {
        if let Err(e) = avatars
            .storage
            .put(&files.key(size), Bytes::from(bytes))
            .await
        {
            tracing::error!(error = %e, "storing an avatar failed");
            if !already_ours {
                avatars.remove(&files).await;
            }
            return Err(ApiError::Unavailable);
        }
    }
    let (before, after) = match service::set_avatar(&state, &who, id, Some(url.clone())).await {
        Ok(changed) => changed,
        Err(e) => {
            // Nothing points at the new files: they go, unless they were already the avatar.
            if !already_ours {
                avatars.remove(&files).await;
            }
            return Err(e.into());
        }
    };
    if before.avatar_url != after.avatar_url {
        if let Some(old) = avatars.files_of(id, before.avatar_url.as_deref()) {
            avatars.remove_unused(&state, id, &old).await;
        }
    }
    let sizes = SIZES
        .iter()
        .map(|s| AvatarSize {
            size: *s,
            url: avatars.storage.url(&files.key(*s)),
        })
        .collect();
    Ok((
        StatusCode::OK,
        Json(UploadAnswer {
            success: true,
            message: "File uploaded successfully".into(),
            data: UploadedAvatar {
                avatar_url: url,
                sizes,
                version: after.version,
            },
        }),
    )
        .into_response())
}

/// Remove an organization's avatar.
#[utoipa::path(
    delete, path = "/api/organizations/{organizationId}/avatar", operation_id = "removeAvatar", tag = "Organizations",
    params(("organizationId" = Uuid, Path, description = "The organization ID")),
    responses(
        (status = 204, description = "The organization has no avatar now"),
        (status = 401, description = "No valid credential", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not allowed to update this organization", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such organization within reach", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The organization is deleted", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn remove(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = org_id(&id)?;
    let (before, after) = service::set_avatar(&state, &who, id, None).await?;
    state.avatars.forget_replaced(
        &state,
        id,
        before.avatar_url.as_deref(),
        after.avatar_url.as_deref(),
    );
    Ok(StatusCode::NO_CONTENT)
}

/// An avatar stored on local disk. Names are content hashes, so the answer may be cached
/// forever.
#[utoipa::path(
    get, path = "/avatars/{organizationId}/{file}", operation_id = "getAvatar", tag = "Organizations",
    params(
        ("organizationId" = Uuid, Path, description = "The organization ID"),
        ("file" = String, Path, description = "`{hash}-{size}.jpg`"),
    ),
    responses(
        (status = 200, description = "The image", content_type = "image/jpeg"),
        (status = 304, description = "Unchanged (If-None-Match)"),
        (status = 404, description = "No such avatar", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn serve(
    State(state): State<AppState>,
    Path((org, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let disk = state.avatars.disk.as_ref().ok_or(ApiError::NotFound)?;
    let org = Uuid::parse_str(&org).map_err(|_| ApiError::NotFound)?;
    if !orgbase_avatar::file_name_is_ours(&file) {
        return Err(ApiError::NotFound);
    }
    let etag = format!("\"{}\"", file.trim_end_matches(".jpg"));
    let mut res = if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
        && disk.exists(org, &file).await
    {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let bytes = disk.read(org, &file).await.ok_or(ApiError::NotFound)?;
        let mut res = bytes.into_response();
        res.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        res
    };
    let h = res.headers_mut();
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(orgbase_avatar::CACHE_CONTROL),
    );
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    // An image, never a document: nothing in it may run.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    Ok(res)
}

/// The one file of a multipart body, under our limits: 415 when the body is not multipart,
/// 413 past the size limit, 400 when it is malformed, 422 for no file, several, or an empty one.
async fn read_file(
    headers: &HeaderMap,
    body: Body,
    request_limit: usize,
    max_file: usize,
) -> Result<Bytes, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let boundary = multer::parse_boundary(content_type).map_err(|_| {
        ApiError::Unsupported(
            "send the image as `multipart/form-data` with the file in the field `file`".into(),
        )
    })?;
    let constraints = multer::Constraints::new().size_limit(
        multer::SizeLimit::new()
            .whole_stream(request_limit as u64)
            .per_field(max_file as u64),
    );
    let mut form =
        multer::Multipart::with_constraints(body.into_data_stream(), boundary, constraints);
    let mut file: Option<Bytes> = None;
    // A file under another field name: alone, a misnamed field; beside another, several files.
    let mut misnamed: Option<String> = None;
    let mut files = 0;
    // Parts other than the file are refused, as a JSON body's unknown fields are.
    let mut unknown = ValidationErrors::new();
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| multipart_error(e, max_file))?
    {
        let is_file = field.name() == Some("file");
        if is_file || field.file_name().is_some() {
            files += 1;
        }
        if !is_file && field.file_name().is_some() {
            misnamed = field.name().map(str::to_owned);
        }
        if !is_file && field.file_name().is_none() {
            let name = field.name().unwrap_or_default().to_owned();
            unknown.add(
                name.clone(),
                "unknown_field",
                format!("`{name}` is not a part of this upload: send only the file, as `file`"),
            );
        }
        let bytes = field
            .bytes()
            .await
            .map_err(|e| multipart_error(e, max_file))?;
        if files > 1 {
            return Err(ApiError::field(
                "file",
                "several_files",
                "send one file, in the field `file`",
            ));
        }
        if is_file {
            file = Some(bytes);
        }
    }
    unknown.into_result()?;
    match (file, misnamed) {
        (None, Some(name)) => Err(ApiError::field(
            "file",
            "required",
            format!("the file is in the field `{name}`: send it in the field `file`"),
        )),
        (None, None) => Err(ApiError::field(
            "file",
            "required",
            "the multipart body has no field `file`",
        )),
        (Some(b), _) if b.is_empty() => Err(ApiError::field("file", "empty", "the file is empty")),
        (Some(b), _) => Ok(b),
    }
}

fn multipart_error(e: multer::Error, max_file: usize) -> ApiError {
    match e {
        multer::Error::FieldSizeExceeded { .. } => ApiError::PayloadTooLarge { limit: max_file },
        multer::Error::StreamSizeExceeded { limit } => ApiError::PayloadTooLarge {
            limit: limit as usize,
        },
        other => ApiError::BadRequest {
            code: "malformed_body",
            detail: format!("the multipart body is malformed: {other}"),
        },
    }
}

fn refusal(e: AvatarError) -> ApiError {
    match e {
        AvatarError::TooLarge { max } => ApiError::PayloadTooLarge { limit: max },
        AvatarError::UnsupportedType => ApiError::Unsupported(
            "the file is not a PNG, JPEG, WebP or GIF image (its bytes decide, not its name or \
             declared type)"
                .into(),
        ),
        AvatarError::Empty => ApiError::field("file", "empty", "the file is empty"),
        AvatarError::TooManyPixels { max, .. } => ApiError::field(
            "file",
            "image_too_large",
            format!("the image is larger than {max} × {max} pixels"),
        ),
        AvatarError::Undecodable(m) => ApiError::field("file", "unusable_image", m),
    }
}
