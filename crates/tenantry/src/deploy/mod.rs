//! Deployment files written from the catalog, for the dedicated tenants' servers and the
//! routing in front of them: nginx on this machine ([`nginx`]), Docker Compose
//! ([`compose`]) and Kubernetes ([`kubernetes`]); and Caddy with certificates on demand for
//! tenants' custom domains ([`caddyfile`]). Regenerating after a catalog change
//! rewrites only the files whose text changed; a password, once made, is read back from the
//! file holding it and kept.

mod caddy;
mod compose;
mod kubernetes;
mod nginx;
mod yaml;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use uuid::Uuid;

pub use caddy::{CaddyOptions, caddyfile};
pub use compose::{ComposeOptions, compose};
pub use kubernetes::{KUBERNETES_VERSION, KubernetesOptions, kubernetes};
pub use nginx::{NginxOptions, ROUTER_REFUSAL, ROUTER_UNAVAILABLE, nginx};

use crate::error::Error;
use crate::slug::Slug;
use crate::tenancy::Tenancy;
use crate::tenant::{Tenant, TenantStatus};

/// A dedicated tenant, as its deployment sees it.
struct Deployed {
    tenant: Tenant,
    domains: Vec<String>,
}

impl Deployed {
    fn slug(&self) -> &Slug {
        &self.tenant.slug
    }

    fn id(&self) -> Uuid {
        self.tenant.id
    }

    fn active(&self) -> bool {
        self.tenant.status == TenantStatus::Active
    }

    /// `TENANT_SETTINGS` for its server: its settings, with its name as the display name
    /// unless it has one, as JSON in which `'` and `$` are escaped (`\u0027`, `\u0024`), so
    /// that the text is taken literally in single quotes of an env file and in YAML alike.
    /// A change to the settings changes the file, and a redeployment carries it.
    fn server_settings(&self) -> String {
        let mut settings = self
            .tenant
            .settings
            .as_object()
            .cloned()
            .unwrap_or_default();
        settings
            .entry("display_name")
            .or_insert_with(|| self.tenant.name.clone().into());
        serde_json::Value::Object(settings)
            .to_string()
            .replace('\'', "\\u0027")
            .replace('$', "\\u0024")
    }
}

/// The dedicated tenants, by slug.
async fn dedicated(tenancy: &Tenancy) -> Result<Vec<Deployed>, Error> {
    let mut tenants: Vec<Deployed> = tenancy
        .catalog()
        .list()
        .await?
        .into_iter()
        .filter(|details| tenancy.has_own_server(&details.tenant))
        .map(|details| Deployed {
            domains: details.domains.into_iter().map(|d| d.domain).collect(),
            tenant: details.tenant,
        })
        .collect();
    tenants.sort_by(|a, b| a.slug().as_str().cmp(b.slug().as_str()));
    Ok(tenants)
}

/// How a generated file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Rewritten whenever its text changes.
    Plain,
    /// Holds credentials: mode 0600.
    Secret,
    /// Written only if missing, then the operator's (its settings are theirs to edit);
    /// mode 0600.
    Seed,
}

/// Generated files, by path relative to the output directory.
#[derive(Debug, Default)]
pub struct Files {
    files: BTreeMap<PathBuf, (String, Kind)>,
    /// Folders whose files are all generated: one no longer generated is removed.
    owned: Vec<PathBuf>,
}

/// What [`Files::write`] did, by path relative to the output directory.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Written {
    /// Files written because they changed.
    pub written: Vec<PathBuf>,
    /// Files already as they should be.
    pub unchanged: Vec<PathBuf>,
    /// Files of tenants gone from the catalog, removed.
    pub removed: Vec<PathBuf>,
}

impl Files {
    fn add(&mut self, path: impl Into<PathBuf>, text: String, kind: Kind) {
        self.files.insert(path.into(), (text, kind));
    }

    /// The generated paths.
    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.files.keys().map(PathBuf::as_path)
    }

    /// Writes the files under `dir`, leaving alone those whose text is unchanged and
    /// removing files of owned folders that are no longer generated.
    pub fn write(&self, dir: &Path) -> Result<Written, Error> {
        let failed = |path: &Path, e: std::io::Error| {
            Error::Io(format!("cannot write {}: {e}", dir.join(path).display()))
        };
        let mut done = Written::default();
        for (path, (text, kind)) in &self.files {
            let target = dir.join(path);
            let old = std::fs::read_to_string(&target).ok();
            if old.as_deref() == Some(text.as_str()) || (*kind == Kind::Seed && old.is_some()) {
                done.unchanged.push(path.clone());
                continue;
            }
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(|e| failed(path, e))?;
            }
            write_file(&target, text, *kind != Kind::Plain).map_err(|e| failed(path, e))?;
            done.written.push(path.clone());
        }
        for folder in &self.owned {
            let Ok(entries) = std::fs::read_dir(dir.join(folder)) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = folder.join(entry.file_name());
                if self.files.keys().any(|p| p.starts_with(&path)) {
                    continue;
                }
                let full = entry.path();
                let removed = match full.is_dir() {
                    true => std::fs::remove_dir_all(&full),
                    false => std::fs::remove_file(&full),
                };
                removed.map_err(|e| failed(&path, e))?;
                done.removed.push(path);
            }
        }
        Ok(done)
    }
}

/// Replaces `path` with `text` through a temporary file, so a reader never sees half a
/// file; a secret is created with mode 0600.
fn write_file(path: &Path, text: &str, secret: bool) -> std::io::Result<()> {
    let temporary = path.with_extension("tmp-tenantry");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    if secret {
        options.mode(0o600);
    }
    let mut file = options.open(&temporary)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)
}

/// The password kept in `file` under `dir` (a `KEY=value` line of an env file, or a
/// `postgres://user:password@...` URL), or a new one.
fn kept_password(dir: &Path, file: &Path, key: &str) -> String {
    let text = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
    let kept = text.lines().find_map(|line| {
        let value = line.trim().strip_prefix(key)?;
        let value = value
            .strip_prefix('=')
            .or_else(|| value.strip_prefix(": "))?;
        let value = value.trim_matches('"');
        let value = match value.split_once("://") {
            Some((_, rest)) => rest.split_once('@')?.0.split_once(':')?.1,
            None => value,
        };
        let valid = value.len() >= 32 && value.chars().all(|c| c.is_ascii_hexdigit());
        valid.then(|| value.to_owned())
    });
    kept.unwrap_or_else(crate::layout::new_password)
}

/// The path from folder `from` to `to`, both given from the same place.
fn relative(from: &Path, to: &Path) -> PathBuf {
    let absolute = |p: &Path| {
        let path = std::path::absolute(p).unwrap_or_else(|_| p.to_owned());
        path.components()
            .map(|c| c.as_os_str().to_owned())
            .collect::<Vec<_>>()
    };
    let (from, to) = (absolute(from), absolute(to));
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut path = PathBuf::new();
    for _ in common..from.len() {
        path.push("..");
    }
    for part in &to[common..] {
        path.push(part);
    }
    if path.as_os_str().is_empty() {
        path.push(".");
    }
    path
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::relative;

    #[test]
    fn relative_paths() {
        assert_eq!(
            relative(Path::new("/a/b/c"), Path::new("/a")),
            Path::new("../..")
        );
        assert_eq!(relative(Path::new("/a"), Path::new("/a")), Path::new("."));
        assert_eq!(
            relative(Path::new("/a/b"), Path::new("/a/d/e")),
            Path::new("../d/e")
        );
    }
}
