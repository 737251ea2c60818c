//! Where encoded avatars live: local disk (served by Orgbase) or S3-compatible object storage.
//!
//! Every file has a key `avatars/{organizationId}/{hash}-{size}.jpg`, and its public URL is the
//! storage's base followed by that key. Keys are per organization: the same picture uploaded
//! twice by one organization is one set of files, and removing an organization's old avatar can
//! never remove a file another organization still shows.
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::{Attribute, Attributes, ObjectStore, ObjectStoreExt, PutOptions, PutPayload};
use uuid::Uuid;

use crate::pipeline::SIZES;

/// What every stored file is.
pub const CONTENT_TYPE: &str = "image/jpeg";
/// Names are content hashes: a URL's bytes never change.
pub const CACHE_CONTROL: &str = "public, max-age=31536000, immutable";
const PREFIX: &str = "avatars";

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The message names the operation, never a credential.
    #[error("avatar storage failed: {0}")]
    Failed(String),
}

/// One avatar's set of files: an organization and a content hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvatarFiles {
    pub organization: Uuid,
    pub hash: String,
}

impl AvatarFiles {
    pub fn new(organization: Uuid, hash: impl Into<String>) -> Self {
        Self {
            organization,
            hash: hash.into(),
        }
    }

    /// The key of one size.
    pub fn key(&self, size: u32) -> String {
        format!("{PREFIX}/{}/{}-{size}.jpg", self.organization, self.hash)
    }

    /// Every size's key, largest first.
    pub fn keys(&self) -> Vec<String> {
        SIZES.iter().map(|s| self.key(*s)).collect()
    }

    /// The files behind `url`, when it is the large size of one of ours under `base`.
    pub fn from_url(base: &str, url: &str) -> Option<Self> {
        let rest = url.strip_prefix(base.trim_end_matches('/'))?;
        let rest = rest
            .strip_prefix('/')?
            .strip_prefix(PREFIX)?
            .strip_prefix('/')?;
        let (org, file) = rest.split_once('/')?;
        let organization = Uuid::parse_str(org).ok()?;
        if organization.to_string() != org {
            return None;
        }
        let stem = file.strip_suffix(&format!("-{}.jpg", SIZES[0]))?;
        file_name_is_ours(file).then(|| Self::new(organization, stem))
    }
}

/// `{32 lowercase hex}-{a stored size}.jpg`, and nothing else: the only names the disk route
/// serves, so no path (`..`, `/`, an encoded byte) can reach the file system.
pub fn file_name_is_ours(name: &str) -> bool {
    let Some((hash, rest)) = name.split_once('-') else {
        return false;
    };
    let hash_ok = hash.len() == 32
        && hash
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    hash_ok && SIZES.iter().any(|s| rest == format!("{s}.jpg"))
}

/// Where avatars are kept.
#[async_trait]
pub trait AvatarStorage: Send + Sync + 'static {
    /// `disk` or `s3`, for logs.
    fn kind(&self) -> &'static str;
    /// What public URLs start with (no trailing slash).
    fn public_base(&self) -> &str;
    /// Stores `bytes` under `key` (replacing what is there: same key, same bytes), always
    /// writing, so a file being removed concurrently is put back.
    async fn put(&self, key: &str, bytes: Bytes) -> Result<(), StorageError>;
    /// Removes `key`; a missing one is not an error.
    async fn delete(&self, key: &str) -> Result<(), StorageError>;

    /// The public URL of `key`.
    fn url(&self, key: &str) -> String {
        format!("{}/{key}", self.public_base())
    }
}

/// Files under a folder, written whole (a temporary file, synced, then renamed) so a reader
/// never sees half a file, and served by Orgbase itself.
#[derive(Debug, Clone)]
pub struct DiskStorage {
    dir: PathBuf,
    public_base: String,
}

impl DiskStorage {
    /// `public_url` is Orgbase's own (`ORGBASE_PUBLIC_URL`).
    pub fn new(dir: impl Into<PathBuf>, public_url: &str) -> Self {
        Self {
            dir: dir.into(),
            public_base: public_url.trim_end_matches('/').to_owned(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, key: &str) -> Result<PathBuf, StorageError> {
        let rest = key
            .strip_prefix(PREFIX)
            .and_then(|r| r.strip_prefix('/'))
            .and_then(|r| r.split_once('/'))
            .filter(|(org, file)| Uuid::parse_str(org).is_ok() && file_name_is_ours(file))
            .ok_or_else(|| StorageError::Failed(format!("not an avatar key: {key}")))?;
        Ok(self.dir.join(rest.0).join(rest.1))
    }

    /// Whether `organization`'s file `name` is one of ours and exists.
    pub async fn exists(&self, organization: Uuid, name: &str) -> bool {
        file_name_is_ours(name)
            && tokio::fs::try_exists(self.dir.join(organization.to_string()).join(name))
                .await
                .unwrap_or(false)
    }

    /// The bytes of `organization`'s file `name`, if it is one of ours and exists.
    pub async fn read(&self, organization: Uuid, name: &str) -> Option<Bytes> {
        if !file_name_is_ours(name) {
            return None;
        }
        let path = self.dir.join(organization.to_string()).join(name);
        tokio::fs::read(path).await.ok().map(Bytes::from)
    }
}

#[async_trait]
impl AvatarStorage for DiskStorage {
    fn kind(&self) -> &'static str {
        "disk"
    }

    fn public_base(&self) -> &str {
        &self.public_base
    }

    async fn put(&self, key: &str, bytes: Bytes) -> Result<(), StorageError> {
        let path = self.path(key)?;
        tokio::task::spawn_blocking(move || write_whole(&path, &bytes))
            .await
            .map_err(|e| StorageError::Failed(e.to_string()))?
            .map_err(|e| StorageError::Failed(format!("writing {key}: {e}")))
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        let path = self.path(key)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StorageError::Failed(format!("removing {key}: {e}"))),
        }
    }
}

fn write_whole(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("no parent folder"))?;
    std::fs::create_dir_all(dir)?;
    // Written even when a file of this name exists: it may be on its way out (a replaced
    // avatar being removed), and writing the same bytes again is harmless.
    // Readable by others (a web server in front may serve the folder), like any published file.
    let mut tmp = tempfile::Builder::new()
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// S3-compatible storage settings (`ORGBASE_S3_*`).
#[derive(Clone)]
pub struct S3Settings {
    pub bucket: String,
    /// Unset: AWS's own endpoint for the region.
    pub endpoint: Option<String>,
    pub region: String,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// What avatar URLs start with: a CDN or the bucket's public address.
    pub public_url: String,
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Settings")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("public_url", &self.public_url)
            .finish_non_exhaustive()
    }
}

/// Objects in a bucket, through `object_store`: requests signed with SigV4, retried on failure.
#[derive(Debug, Clone)]
pub struct S3Storage {
    store: Arc<AmazonS3>,
    public_base: String,
}

impl S3Storage {
    pub fn new(settings: &S3Settings) -> Result<Self, StorageError> {
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&settings.bucket)
            .with_region(&settings.region);
        if let Some(endpoint) = &settings.endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"));
        }
        if let Some(id) = &settings.access_key_id {
            builder = builder.with_access_key_id(id);
        }
        if let Some(secret) = &settings.secret_access_key {
            builder = builder.with_secret_access_key(secret);
        }
        let store = builder
            .build()
            .map_err(|e| StorageError::Failed(format!("S3 settings: {e}")))?;
        Ok(Self {
            store: Arc::new(store),
            public_base: settings.public_url.trim_end_matches('/').to_owned(),
        })
    }

    /// The object at `key` and its `Content-Type`, if it exists (for checks and tests: clients
    /// read avatars from the public URL, not through Orgbase).
    pub async fn fetch(&self, key: &str) -> Result<Option<(Bytes, String)>, StorageError> {
        let got = match self.store.get(&key.into()).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(StorageError::Failed(format!("reading {key}: {e}"))),
        };
        let content_type = got
            .attributes
            .get(&Attribute::ContentType)
            .map(|v| v.to_string())
            .unwrap_or_default();
        let bytes = got
            .bytes()
            .await
            .map_err(|e| StorageError::Failed(format!("reading {key}: {e}")))?;
        Ok(Some((bytes, content_type)))
    }

    /// Every key under `avatars/`.
    pub async fn keys(&self) -> Result<Vec<String>, StorageError> {
        use futures_util::TryStreamExt;
        let prefix = object_store::path::Path::from(PREFIX);
        let metas: Vec<_> = self
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|e| StorageError::Failed(format!("listing: {e}")))?;
        Ok(metas.into_iter().map(|m| m.location.to_string()).collect())
    }
}

#[async_trait]
impl AvatarStorage for S3Storage {
    fn kind(&self) -> &'static str {
        "s3"
    }

    fn public_base(&self) -> &str {
        &self.public_base
    }

    async fn put(&self, key: &str, bytes: Bytes) -> Result<(), StorageError> {
        let mut attributes = Attributes::new();
        attributes.insert(Attribute::ContentType, CONTENT_TYPE.into());
        attributes.insert(Attribute::CacheControl, CACHE_CONTROL.into());
        let opts = PutOptions {
            attributes,
            ..Default::default()
        };
        self.store
            .put_opts(&key.into(), PutPayload::from(bytes), opts)
            .await
            .map(|_| ())
            .map_err(|e| StorageError::Failed(format!("storing {key}: {e}")))
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        match self.store.delete(&key.into()).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(StorageError::Failed(format!("removing {key}: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_names_are_taken() {
        let hash = "0123456789abcdef0123456789abcdef";
        assert!(file_name_is_ours(&format!("{hash}-512.jpg")));
        assert!(file_name_is_ours(&format!("{hash}-128.jpg")));
        for bad in [
            format!("{hash}-64.jpg"),
            format!("{hash}-512.jpg.bak"),
            format!("../{hash}-512.jpg"),
            format!("{}-512.jpg", hash.to_uppercase()),
            "..%2f-512.jpg".into(),
            String::new(),
        ] {
            assert!(!file_name_is_ours(&bad), "{bad}");
        }
    }

    #[test]
    fn a_url_names_its_files_only_under_our_base() {
        let org = Uuid::now_v7();
        let files = AvatarFiles::new(org, "0123456789abcdef0123456789abcdef");
        let url = format!("https://cdn.example.com/{}", files.key(512));
        assert_eq!(
            AvatarFiles::from_url("https://cdn.example.com/", &url),
            Some(files.clone())
        );
        assert_eq!(
            AvatarFiles::from_url("https://other.example.com", &url),
            None
        );
        let small = format!("https://cdn.example.com/{}", files.key(128));
        assert_eq!(
            AvatarFiles::from_url("https://cdn.example.com", &small),
            None
        );
    }
}
