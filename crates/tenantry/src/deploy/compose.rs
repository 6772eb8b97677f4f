//! The book's fourth architecture as a Docker Compose project: per dedicated tenant an app
//! service, a PostgreSQL service and a one-shot migration service on a network of their
//! own, with the tenant's credentials in an env file of its own; the shared server and its
//! database for everything else; nginx in front, routing by host.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use super::{Deployed, Files, Kind, dedicated, kept_password, nginx, relative, yaml};
use crate::error::Error;
use crate::layout::role_name;
use crate::tenancy::Tenancy;

/// What the Compose project is built from.
#[derive(Debug, Clone)]
pub struct ComposeOptions {
    /// The folder the files are written to; passwords already there are kept.
    pub output: PathBuf,
    /// The source tree the image is built from (the Cargo workspace).
    pub context: PathBuf,
    /// The Cargo package and binary serving the app.
    pub binary: String,
    /// The host port nginx publishes.
    pub listen: u16,
    /// The PostgreSQL image of each database service.
    pub postgres_image: String,
    /// The nginx image.
    pub nginx_image: String,
}

impl ComposeOptions {
    /// Options for `binary`, written to `output`, built from the current directory,
    /// nginx on port 8080, PostgreSQL 15 and nginx 1.27.
    pub fn new(output: PathBuf, binary: &str) -> Self {
        Self {
            output,
            context: PathBuf::from("."),
            binary: binary.to_owned(),
            listen: 8080,
            postgres_image: "postgres:15".into(),
            nginx_image: "nginx:1.27".into(),
        }
    }
}

/// The port every app container listens on.
const APP_PORT: u16 = 8000;

/// The Compose project for the catalog as it is: `Dockerfile`, `docker-compose.yaml`,
/// `nginx.conf`, `env/shared.env` (made once, then the operator's) and `env/<id>.env` per
/// dedicated tenant (mode 0600; its password is kept across regenerations). A suspended
/// tenant keeps its database service; its hosts go to the shared server, which answers 403.
pub async fn compose(tenancy: &Tenancy, options: &ComposeOptions) -> Result<Files, Error> {
    let tenants = dedicated(tenancy).await?;
    let mut files = Files {
        owned: vec![PathBuf::from("env")],
        ..Files::default()
    };
    files.add("Dockerfile", dockerfile(&options.binary), Kind::Plain);
    files.add(
        "Dockerfile.dockerignore",
        dockerignore(&relative(&options.context, &options.output)),
        Kind::Plain,
    );
    let mut project = Project::default();
    shared_services(options, &mut files, &mut project);
    let mut routes = Vec::new();
    let mut nginx_needs = vec![json!("app")];
    for tenant in &tenants {
        if let Some(service) = tenant_services(options, tenant, &mut files, &mut project) {
            routes.push((tenant.domains.clone(), format!("{service}:{APP_PORT}")));
            nginx_needs.push(json!(service));
        }
    }
    project.services.insert(
        "nginx".into(),
        json!({
            "image": options.nginx_image,
            "ports": [format!("{}:80", options.listen)],
            "volumes": ["./nginx.conf:/etc/nginx/conf.d/default.conf:ro"],
            "networks": ["edge"],
            "depends_on": nginx_needs,
            "restart": "unless-stopped",
        }),
    );
    let project = json!({
        "name": "tenantry",
        "services": project.services,
        "networks": project.networks,
        "volumes": project.volumes,
    });
    files.add(
        "docker-compose.yaml",
        format!(
            "# Written by `deploy compose` from the tenant catalog; regenerate it after a change.\n{}",
            yaml::document(&project)
        ),
        Kind::Plain,
    );
    // Docker's embedded DNS server answers for the services of the project.
    files.add(
        "nginx.conf",
        nginx::resolved(80, "127.0.0.11", &routes, &format!("app:{APP_PORT}")),
        Kind::Plain,
    );
    Ok(files)
}

/// The Compose project's services, networks and volumes, as they are added.
#[derive(Default)]
struct Project {
    services: Map<String, Value>,
    networks: Map<String, Value>,
    volumes: Map<String, Value>,
}

/// A service of the app's image running `command`: a server is restarted unless stopped, a
/// migration runs once.
fn app(options: &ComposeOptions, command: &str, restart: &str) -> Value {
    let image = format!("{}:latest", options.binary);
    json!({ "image": image, "command": [command], "restart": restart })
}

/// The shared server, its migration and its database, with `env/shared.env`.
fn shared_services(options: &ComposeOptions, files: &mut Files, project: &mut Project) {
    let shared_password = kept_password(
        &options.output,
        Path::new("env/shared.env"),
        "POSTGRES_PASSWORD",
    );
    let app_password = kept_password(
        &options.output,
        Path::new("env/shared.env"),
        "APP_ROLE_PASSWORD",
    );
    files.add(
        "env/shared.env",
        env(&[
            ("BIND", format!("0.0.0.0:{APP_PORT}")),
            ("POSTGRES_USER", "postgres".into()),
            ("POSTGRES_PASSWORD", shared_password.clone()),
            ("POSTGRES_DB", "tenantry".into()),
            (
                "DATABASE_URL",
                format!("postgres://postgres:{shared_password}@db:5432/tenantry"),
            ),
            // The role tenant requests run as: `migrate` gives it this password, which a
            // server that asks for passwords (as the image's does over the network) needs.
            ("APP_ROLE_PASSWORD", app_password),
        ]),
        Kind::Seed,
    );
    let mut shared = app(options, "serve", "unless-stopped");
    shared["build"] = json!({
        "context": relative(&options.output, &options.context),
        "dockerfile": relative(&options.context, &options.output.join("Dockerfile")),
    });
    shared["env_file"] = json!(["env/shared.env"]);
    // A dedicated tenant reached through the shared server (by path prefix) is forwarded
    // to its own service, never started inside the shared one.
    shared["environment"] = json!({ "DEDICATED_ADDRESS": format!("app-{{slug}}:{APP_PORT}") });
    shared["networks"] = json!(["edge", "shared"]);
    shared["depends_on"] = json!({ "migrate": { "condition": "service_completed_successfully" } });
    project.services.insert("app".into(), shared);
    let mut migrate = app(options, "migrate", "no");
    migrate["env_file"] = json!(["env/shared.env"]);
    migrate["networks"] = json!(["shared"]);
    migrate["depends_on"] = json!({ "db": { "condition": "service_healthy" } });
    project.services.insert("migrate".into(), migrate);
    project.services.insert(
        "db".into(),
        database(options, "env/shared.env", "shared", "shared-data"),
    );
    project.networks.insert("edge".into(), json!({}));
    project
        .networks
        .insert("shared".into(), json!({ "internal": true }));
    project.volumes.insert("shared-data".into(), json!({}));
}

/// A dedicated tenant's database, and for an active one its migration and server, with its
/// env file; the name of its server's service if it is active.
fn tenant_services(
    options: &ComposeOptions,
    tenant: &Deployed,
    files: &mut Files,
    project: &mut Project,
) -> Option<String> {
    let slug = tenant.slug().as_str();
    let env_path = format!("env/{}.env", tenant.id());
    let network = format!("tenant-{slug}");
    let volume = format!("data-{}", tenant.id());
    files.add(&env_path, tenant_env(options, tenant), Kind::Secret);
    project.services.insert(
        format!("db-{slug}"),
        database(options, &env_path, &network, &volume),
    );
    project.volumes.insert(volume, json!({}));
    project
        .networks
        .insert(network.clone(), json!({ "internal": true }));
    if !tenant.active() {
        return None;
    }
    let mut migrate = app(options, "migrate-tenant", "no");
    migrate["env_file"] = json!([env_path]);
    migrate["networks"] = json!([network]);
    migrate["depends_on"] = json!({ format!("db-{slug}"): { "condition": "service_healthy" } });
    project.services.insert(format!("migrate-{slug}"), migrate);
    let mut server = app(options, "serve-tenant", "unless-stopped");
    server["env_file"] = json!([env_path]);
    server["networks"] = json!(["edge", network]);
    server["depends_on"] =
        json!({ format!("migrate-{slug}"): { "condition": "service_completed_successfully" } });
    let service = format!("app-{slug}");
    project.services.insert(service.clone(), server);
    Some(service)
}

/// A PostgreSQL service keeping its data in `volume`, reachable only on `network`.
fn database(options: &ComposeOptions, env_file: &str, network: &str, volume: &str) -> Value {
    json!({
        "image": options.postgres_image,
        "env_file": [env_file],
        "volumes": [format!("{volume}:/var/lib/postgresql/data")],
        "networks": [network],
        "healthcheck": {
            "test": ["CMD-SHELL", "pg_isready -U \"$$POSTGRES_USER\" -d \"$$POSTGRES_DB\""],
            "interval": "5s",
            "timeout": "5s",
            "retries": 12,
        },
        "restart": "unless-stopped",
    })
}

/// A dedicated tenant's environment: its server's (`serve-tenant`) and its database
/// container's, whose superuser is the tenant's own role.
fn tenant_env(options: &ComposeOptions, tenant: &Deployed) -> String {
    let slug = tenant.slug().as_str();
    let path = PathBuf::from(format!("env/{}.env", tenant.id()));
    let password = kept_password(&options.output, &path, "POSTGRES_PASSWORD");
    let role = role_name(&tenant.tenant);
    // From the id, as the role's name and the volume's: a renamed tenant keeps its data.
    let database = format!("tenant_{}", tenant.id().simple());
    env(&[
        ("TENANT_ID", tenant.id().to_string()),
        ("TENANT_SLUG", slug.to_owned()),
        ("TENANT_SETTINGS", format!("'{}'", tenant.server_settings())),
        ("TENANT_HOSTS", tenant.domains.join(",")),
        ("BIND", format!("0.0.0.0:{APP_PORT}")),
        ("POSTGRES_USER", role.clone()),
        ("POSTGRES_PASSWORD", password.clone()),
        ("POSTGRES_DB", database.clone()),
        (
            "DATABASE_URL",
            format!("postgres://{role}:{password}@db-{slug}:5432/{database}"),
        ),
    ])
}

fn env(pairs: &[(&str, String)]) -> String {
    pairs.iter().map(|(k, v)| format!("{k}={v}\n")).collect()
}

/// What the build context leaves out, read by BuildKit beside the Dockerfile: build output,
/// history, local databases, and `output` (this folder, with its credentials) if it is
/// inside the context.
fn dockerignore(output: &Path) -> String {
    let mut ignore = "# Written by `deploy compose`: never sent as build context.\n\
                      target/\n**/target/\n.git/\n**/*.sqlite3*\n"
        .to_owned();
    if !output.starts_with("..") {
        ignore.push_str(&format!("{}/\n", output.display()));
    }
    ignore
}

/// A multi-stage build: the release binary compiled on Rust's image (its registry and
/// target kept in BuildKit's cache between builds), run as an unprivileged user on a slim
/// Debian.
fn dockerfile(binary: &str) -> String {
    format!(
        "# syntax=docker/dockerfile:1\n\
         # Written by `deploy compose`.\n\
         FROM rust:1.95-slim-bookworm AS build\n\
         WORKDIR /src\n\
         COPY . .\n\
         RUN --mount=type=cache,target=/usr/local/cargo/registry \\\n    \
         --mount=type=cache,target=/src/target \\\n    \
         cargo build --release --locked -p {binary} \\\n    \
         && cp target/release/{binary} /usr/local/bin/{binary}\n\
         \n\
         FROM debian:bookworm-slim\n\
         RUN useradd --system --uid 10001 app\n\
         COPY --from=build /usr/local/bin/{binary} /usr/local/bin/{binary}\n\
         USER 10001\n\
         EXPOSE {APP_PORT}\n\
         ENTRYPOINT [\"{binary}\"]\n"
    )
}
