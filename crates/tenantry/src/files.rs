//! Files per tenant: one object store for the install (a directory of the local file
//! system, or S3-compatible storage, through the `object_store` crate), and each tenant's
//! files under a prefix the library keeps, `tenants/<tenant id>/`. A handler or a job gets
//! [`TenantFiles`] for its own tenant and names files relative to it; a name that could
//! leave the prefix (`..`, an absolute path, a backslash, a hidden or empty segment) is
//! refused before the store sees it. The prefix is the tenant's id, which neither a rename
//! nor a move changes, so a tenant's files stay where they are through both; an export
//! carries them, an import restores them, and deleting the tenant deletes them.

use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::Error;

/// What asking for files says where no store is configured.
pub(crate) const NO_FILE_STORE: &str = "no file store is configured for tenants' files";

/// The longest file name, in bytes.
pub const MAX_NAME: usize = 255;

/// The install's file store.
#[derive(Clone)]
pub struct Files {
    store: Arc<dyn ObjectStore>,
    /// Where tenants' prefixes start in the store.
    root: Path,
    /// What the store is, for messages (never a credential).
    describe: Arc<str>,
}

impl std::fmt::Debug for Files {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Files").field(&self.describe).finish()
    }
}

fn store_error_path(error: object_store::path::Error) -> Error {
    Error::Io(format!("not a directory for files: {error}"))
}

fn store_error(error: object_store::Error) -> Error {
    Error::Io(format!("the file store failed: {error}"))
}

impl Files {
    /// Files in the directory `dir`, made when the first file is written.
    pub fn local(dir: impl AsRef<std::path::Path>) -> Result<Self, Error> {
        let dir = std::path::absolute(dir.as_ref())
            .map_err(|e| Error::Io(format!("cannot resolve {}: {e}", dir.as_ref().display())))?;
        let root = Path::from_absolute_path(&dir).map_err(store_error_path)?;
        let store = object_store::local::LocalFileSystem::new().with_automatic_cleanup(true);
        Ok(Self {
            store: Arc::new(store),
            root,
            describe: format!("the directory {}", dir.display()).into(),
        })
    }

    /// Files at `url`: `file:///absolute/dir`, or `s3://bucket/prefix` with the credentials,
    /// region and endpoint (for S3-compatible storage) the `AWS_*` environment variables give.
    pub fn from_url(url: &str) -> Result<Self, Error> {
        Self::from_url_with(url, &[])
    }

    /// [`from_url`](Self::from_url), with S3 settings (`aws_endpoint`, `aws_region`,
    /// `aws_access_key_id`, `aws_allow_http`, ...) given here over the environment's.
    pub fn from_url_with(url: &str, s3: &[(&str, &str)]) -> Result<Self, Error> {
        let invalid = |message: String| Error::Invalid {
            field: "files url",
            message,
        };
        let parsed =
            url::Url::parse(url).map_err(|e| invalid(format!("'{url}' is not a URL: {e}")))?;
        match parsed.scheme() {
            "file" => {
                let dir = parsed
                    .to_file_path()
                    .map_err(|()| invalid(format!("'{url}' is not an absolute file:// path")))?;
                Self::local(dir)
            }
            "s3" => {
                let mut builder = object_store::aws::AmazonS3Builder::from_env().with_url(url);
                for (key, value) in s3 {
                    let key = key
                        .parse()
                        .map_err(|e| invalid(format!("'{key}' is not an S3 setting: {e}")))?;
                    builder = builder.with_config(key, *value);
                }
                let store = builder
                    .build()
                    .map_err(|e| invalid(format!("'{url}': {e}")))?;
                let root = Path::parse(parsed.path().trim_start_matches('/'))
                    .map_err(|e| invalid(format!("'{url}': {e}")))?;
                Ok(Self {
                    store: Arc::new(store),
                    root,
                    describe: format!("s3://{}", parsed.host_str().unwrap_or_default()).into(),
                })
            }
            other => Err(invalid(format!(
                "'{other}' is not a file store: use file:///DIR or s3://BUCKET/PREFIX"
            ))),
        }
    }

    /// The files of tenant `id`.
    pub(crate) fn tenant(&self, id: Uuid) -> TenantFiles {
        TenantFiles {
            files: self.clone(),
            prefix: self
                .root
                .clone()
                .join("tenants")
                .join(id.to_string().as_str()),
        }
    }

    /// Deletes every file of tenant `id`; how many there were.
    pub(crate) async fn delete_tenant(&self, id: Uuid) -> Result<usize, Error> {
        let files = self.tenant(id);
        let listed: Vec<_> = self
            .store
            .list(Some(&files.prefix))
            .try_collect()
            .await
            .map_err(store_error)?;
        for meta in &listed {
            self.store
                .delete(&meta.location)
                .await
                .map_err(store_error)?;
        }
        Ok(listed.len())
    }
}

/// One tenant's files: every name is relative to its prefix.
#[derive(Debug, Clone)]
pub struct TenantFiles {
    files: Files,
    prefix: Path,
}

/// A file as its tenant's store lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FileInfo {
    /// Its name, relative to the tenant's prefix.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it was last written.
    pub modified: DateTime<Utc>,
}

impl TenantFiles {
    fn path(&self, name: &str) -> Result<Path, Error> {
        check_name(name)?;
        Ok(name
            .split('/')
            .fold(self.prefix.clone(), |path, part| path.join(part)))
    }

    /// Writes `bytes` as `name`, replacing a file of that name.
    pub async fn put(&self, name: &str, bytes: impl Into<Bytes>) -> Result<FileInfo, Error> {
        let path = self.path(name)?;
        let bytes: Bytes = bytes.into();
        let size = bytes.len() as u64;
        self.files
            .store
            .put(&path, PutPayload::from_bytes(bytes))
            .await
            .map_err(store_error)?;
        Ok(FileInfo {
            name: name.to_owned(),
            size,
            modified: Utc::now(),
        })
    }

    /// The file `name`, if there is one.
    pub async fn get(&self, name: &str) -> Result<Option<Bytes>, Error> {
        let path = self.path(name)?;
        match self.files.store.get(&path).await {
            Ok(found) => Ok(Some(found.bytes().await.map_err(store_error)?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(store_error(error)),
        }
    }

    /// Deletes the file `name`; whether there was one.
    pub async fn delete(&self, name: &str) -> Result<bool, Error> {
        let path = self.path(name)?;
        match self.files.store.head(&path).await {
            Ok(_) => {}
            Err(object_store::Error::NotFound { .. }) => return Ok(false),
            Err(error) => return Err(store_error(error)),
        }
        self.files.store.delete(&path).await.map_err(store_error)?;
        Ok(true)
    }

    /// Every file whose name starts with `prefix` (`""` for all), by name.
    pub async fn list(&self, prefix: &str) -> Result<Vec<FileInfo>, Error> {
        let listed: Vec<_> = self
            .files
            .store
            .list(Some(&self.prefix))
            .try_collect()
            .await
            .map_err(store_error)?;
        let mut files: Vec<FileInfo> = listed
            .into_iter()
            .filter_map(|meta| {
                let name = meta
                    .location
                    .prefix_match(&self.prefix)?
                    .map(|part| part.as_ref().to_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                name.starts_with(prefix).then_some(FileInfo {
                    name,
                    size: meta.size,
                    modified: meta.last_modified,
                })
            })
            .collect();
        files.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(files)
    }

    /// The SHA-256 (hex) of the file `name`, if there is one.
    pub async fn checksum(&self, name: &str) -> Result<Option<String>, Error> {
        Ok(self
            .get(name)
            .await?
            .map(|bytes| hex::encode(Sha256::digest(&bytes))))
    }
}

/// Checks that `name` is a file name that stays under a tenant's prefix: segments of
/// letters, digits, `-`, `_` and `.`, separated by `/`, none empty or starting with `.`.
pub fn check_name(name: &str) -> Result<(), Error> {
    let refuse = |why: &str| {
        Err(Error::Invalid {
            field: "file name",
            message: format!("'{}' {why}", name.escape_default()),
        })
    };
    if name.is_empty() || name.len() > MAX_NAME {
        return refuse(&format!("is not 1 to {MAX_NAME} bytes"));
    }
    for segment in name.split('/') {
        if segment.is_empty() {
            return refuse("has an empty segment (a leading, doubled or trailing '/')");
        }
        if segment.starts_with('.') {
            return refuse("has a segment starting with '.'");
        }
        if !segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return refuse("may hold only letters, digits, '-', '_', '.' and '/'");
        }
    }
    Ok(())
}
