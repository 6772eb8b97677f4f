//! Kubernetes manifests from the catalog: per dedicated tenant a namespace of its own with
//! its server (Deployment, Service, Ingress for its domains), its migration Job, its
//! database URL in a Secret, a NetworkPolicy that denies by default and a ResourceQuota;
//! plus the shared server for everything else.

use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;

use serde_json::{Value, json};
use sqlx::postgres::PgConnectOptions;

use super::{Deployed, Files, Kind, dedicated, kept_password, yaml};
use crate::error::Error;
use crate::layout::{own_database_of, set_password};
use crate::tenancy::Tenancy;

/// The Kubernetes version whose API the manifests are written for (and tested against).
pub const KUBERNETES_VERSION: &str = "1.34.0";

/// What the manifests are made of.
#[derive(Debug, Clone)]
pub struct KubernetesOptions {
    /// The folder the files are written to; passwords already there are kept.
    pub output: PathBuf,
    /// The app's image, whose entry point is the app's binary.
    pub image: String,
    /// The IngressClass of the ingress controller.
    pub ingress_class: String,
    /// The namespace the ingress controller runs in: the only one allowed to reach tenant
    /// servers.
    pub ingress_namespace: String,
    /// The database servers' address as the cluster reaches them (`host:port`), when it
    /// differs from this process's.
    pub database_address: Option<String>,
    /// The shared server's database URL, written to its Secret the first time.
    pub shared_database_url: String,
    /// Write loopback database addresses and a `.localhost` base domain, which no cluster
    /// reaches, instead of refusing them (for a cluster on this very machine).
    pub allow_local: bool,
}

const APP_PORT: u16 = 8000;
const MANAGED: &str = "app.kubernetes.io/managed-by";
const TENANT: &str = "tenantry.dev/tenant";

/// The manifests for the catalog as it is: `shared/app.yaml`, `shared/secret.yaml` (made
/// once, then the operator's), and per dedicated tenant `tenants/<slug>/app.yaml` and
/// `tenants/<slug>/secret.yaml` (mode 0600). The database password in a tenant's Secret is
/// kept across regenerations and set on the tenant's role as the files are written, so a
/// tenant deployed this way must not also be served by a local supervisor (which sets a
/// fresh one at each start). A suspended tenant's server is scaled to zero and loses its
/// Ingress; its hosts then reach the shared server, which answers 403.
pub async fn kubernetes(tenancy: &Tenancy, options: &KubernetesOptions) -> Result<Files, Error> {
    let mut files = Files {
        owned: vec![PathBuf::from("tenants")],
        ..Files::default()
    };
    let version = tenancy.migrations().tenant_version().unwrap_or(0);
    let base = tenancy.identification().base_domain.to_string();
    let owner = PgConnectOptions::from_str(&options.shared_database_url)?;
    let mut tenants = Vec::new();
    for tenant in dedicated(tenancy).await? {
        let database = own_database_of(tenancy.cx(), &tenant.tenant).await?;
        let address = options
            .database_address
            .clone()
            .unwrap_or_else(|| format!("{}:{}", database.host, database.port));
        tenants.push((tenant, database, address));
    }
    if !options.allow_local {
        let shared = options
            .database_address
            .clone()
            .unwrap_or_else(|| format!("{}:{}", owner.get_host(), owner.get_port()));
        let addresses = std::iter::once(&shared).chain(tenants.iter().map(|(.., a)| a));
        refuse_local(&base, addresses)?;
    }
    let shared_url = match &options.database_address {
        Some(address) => at_address(&options.shared_database_url, address),
        None => options.shared_database_url.clone(),
    };
    files.add(
        "shared/app.yaml",
        shared(options, &base, version),
        Kind::Plain,
    );
    files.add(
        "shared/secret.yaml",
        format!(
            "# DATABASE_URL is the catalog owner's (role {}): the shared server's `migrate` and\n\
             # tenant lifecycle create schemas, databases and roles; its requests run as the app\n\
             # role, which Row-Level Security holds.\n{}",
            owner.get_username(),
            yaml::document(&secret(
                "tenantry",
                "database",
                json!({ "DATABASE_URL": shared_url }),
            ))
        ),
        Kind::Seed,
    );
    for (tenant, database, address) in tenants {
        let folder = PathBuf::from("tenants").join(tenant.slug().as_str());
        let secret_path = folder.join("secret.yaml");
        let password = kept_password(&options.output, &secret_path, "DATABASE_URL");
        set_password(tenancy.cx(), &tenant.tenant, &password).await?;
        let url = format!(
            "postgres://{}:{password}@{address}/{}",
            database.role, database.database
        );
        let namespace = namespace(&tenant);
        files.add(
            &secret_path,
            yaml::document(&secret(
                &namespace,
                "database",
                json!({
                    "DATABASE_URL": url,
                    "TENANT_ID": tenant.id().to_string(),
                    "TENANT_SLUG": tenant.slug().as_str(),
                    "TENANT_SETTINGS": tenant.server_settings(),
                }),
            )),
            Kind::Secret,
        );
        files.add(
            folder.join("app.yaml"),
            tenant_manifests(options, &tenant, &address, version),
            Kind::Plain,
        );
    }
    Ok(files)
}

/// `url` with its host and port replaced by `address` (`host:port`, as the cluster reaches
/// it), its credentials, database and parameters kept.
fn at_address(url: &str, address: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let userinfo = authority
        .rsplit_once('@')
        .map(|(userinfo, _)| format!("{userinfo}@"))
        .unwrap_or_default();
    format!("{scheme}://{userinfo}{address}{tail}")
}

/// Refuses a base domain or database address that only this machine reaches.
fn refuse_local<'a>(base: &str, addresses: impl Iterator<Item = &'a String>) -> Result<(), Error> {
    let local_host = |host: &str| {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        host == "localhost"
            || host.ends_with(".localhost")
            || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    };
    if local_host(base) {
        return Err(Error::Invalid {
            field: "BASE_DOMAIN",
            message: format!(
                "the base domain {base} resolves only on this machine, so no Ingress host \
                 under it reaches the cluster; set BASE_DOMAIN to the domain the cluster \
                 serves, or pass --allow-local for a cluster on this machine"
            ),
        });
    }
    for address in addresses {
        let host = address
            .rsplit_once(':')
            .map_or(address.as_str(), |(h, _)| h);
        if local_host(host) {
            return Err(Error::Invalid {
                field: "--database-address",
                message: format!(
                    "the database is at {address}, a loopback address no pod reaches; pass \
                     --database-address HOST:PORT as the cluster reaches it, or --allow-local \
                     for a cluster on this machine"
                ),
            });
        }
    }
    Ok(())
}

fn namespace(tenant: &Deployed) -> String {
    format!("tenant-{}", tenant.slug())
}

fn labels(tenant: Option<&Deployed>) -> Value {
    let mut labels = json!({ MANAGED: "tenantry", "app.kubernetes.io/name": "tenantry" });
    if let Some(tenant) = tenant {
        labels[TENANT] = json!(tenant.slug().as_str());
    }
    labels
}

fn metadata(name: &str, namespace: &str, labels: &Value) -> Value {
    json!({ "name": name, "namespace": namespace, "labels": labels })
}

fn secret(namespace: &str, name: &str, data: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata(name, namespace, &labels(None)),
        "type": "Opaque",
        "stringData": data,
    })
}

/// The app's container: `args` on the image, its settings from the `database` Secret,
/// within its resources, as an unprivileged user.
fn container(options: &KubernetesOptions, args: &[&str]) -> Value {
    json!({
        "name": "app",
        "image": options.image,
        "args": args,
        "env": [{ "name": "BIND", "value": format!("0.0.0.0:{APP_PORT}") }],
        "envFrom": [{ "secretRef": { "name": "database" } }],
        "resources": {
            "requests": { "cpu": "50m", "memory": "64Mi" },
            "limits": { "cpu": "1", "memory": "256Mi" },
        },
        "securityContext": {
            "runAsNonRoot": true,
            "runAsUser": 10001,
            "allowPrivilegeEscalation": false,
            "readOnlyRootFilesystem": true,
            "capabilities": { "drop": ["ALL"] },
        },
    })
}

fn pod(container: Value, labels: &Value, restart: &str) -> Value {
    json!({
        "metadata": { "labels": labels },
        "spec": {
            "automountServiceAccountToken": false,
            "containers": [container],
            "restartPolicy": restart,
        },
    })
}

/// A server: the container serving `args`, probed on `/health` (asked for `host`).
fn deployment(
    options: &KubernetesOptions,
    namespace: &str,
    args: &[&str],
    host: Option<&str>,
    labels: &Value,
    replicas: u32,
) -> Value {
    let probe = |period: u32| {
        let mut get = json!({ "path": "/health", "port": "http" });
        if let Some(host) = host {
            get["httpHeaders"] = json!([{ "name": "Host", "value": host }]);
        }
        json!({ "httpGet": get, "periodSeconds": period, "failureThreshold": 3 })
    };
    let mut server = container(options, args);
    server["ports"] = json!([{ "name": "http", "containerPort": APP_PORT }]);
    server["readinessProbe"] = probe(5);
    server["livenessProbe"] = probe(10);
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata("app", namespace, labels),
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": labels },
            "template": pod(server, labels, "Always"),
        },
    })
}

fn service(namespace: &str, labels: &Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata("app", namespace, labels),
        "spec": {
            "selector": labels,
            "ports": [{ "name": "http", "port": 80, "targetPort": "http" }],
        },
    })
}

/// The migration Job, named after the migration set it applies: a new set is a new Job.
fn job(options: &KubernetesOptions, namespace: &str, args: &[&str], version: i64) -> Value {
    let labels = json!({ MANAGED: "tenantry", "app.kubernetes.io/name": "tenantry-migrate" });
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata(&format!("migrate-{version}"), namespace, &labels),
        "spec": {
            "backoffLimit": 3,
            "template": pod(container(options, args), &labels, "Never"),
        },
    })
}

fn backend() -> Value {
    json!({ "service": { "name": "app", "port": { "name": "http" } } })
}

fn shared(options: &KubernetesOptions, base: &str, version: i64) -> String {
    let labels = labels(None);
    yaml::documents(&[
        json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": { "name": "tenantry", "labels": labels },
        }),
        shared_deployment(options, base, &labels),
        service("tenantry", &labels),
        json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": metadata("app", "tenantry", &labels),
            "spec": { "ingressClassName": options.ingress_class, "defaultBackend": backend() },
        }),
        job(options, "tenantry", &["migrate"], version),
    ])
}

/// The shared server: it forwards a dedicated tenant reached through it (by path prefix) to
/// the tenant's own Service, never starting one inside its pod.
/// A dedicated tenant's Deployment: its server, told the hosts it answers for (its
/// domains: not a secret, and a new domain changes only this file).
fn tenant_deployment(
    options: &KubernetesOptions,
    tenant: &Deployed,
    namespace: &str,
    labels: &Value,
) -> Value {
    let replicas = u32::from(tenant.active());
    let mut app = deployment(
        options,
        namespace,
        &["serve-tenant"],
        None,
        labels,
        replicas,
    );
    let env = &mut app["spec"]["template"]["spec"]["containers"][0]["env"];
    if let Some(env) = env.as_array_mut() {
        env.push(json!({ "name": "TENANT_HOSTS", "value": tenant.domains.join(",") }));
    }
    app
}

fn shared_deployment(options: &KubernetesOptions, base: &str, labels: &Value) -> Value {
    let mut shared = deployment(options, "tenantry", &["serve"], Some(base), labels, 2);
    if let Some(env) = shared["spec"]["template"]["spec"]["containers"][0]["env"].as_array_mut() {
        env.push(json!({ "name": "DEDICATED_ADDRESS", "value": "app.tenant-{slug}.svc:80" }));
    }
    shared
}

fn tenant_manifests(
    options: &KubernetesOptions,
    tenant: &Deployed,
    database: &str,
    version: i64,
) -> String {
    let namespace = namespace(tenant);
    let labels = labels(Some(tenant));
    let mut documents = vec![
        json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": { "name": namespace, "labels": labels },
        }),
        tenant_deployment(options, tenant, &namespace, &labels),
        service(&namespace, &labels),
    ];
    if tenant.active() && !tenant.domains.is_empty() {
        let rules: Vec<Value> = tenant
            .domains
            .iter()
            .map(|host| {
                json!({
                    "host": host,
                    "http": { "paths": [{ "path": "/", "pathType": "Prefix", "backend": backend() }] },
                })
            })
            .collect();
        documents.push(json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": metadata("app", &namespace, &labels),
            "spec": { "ingressClassName": options.ingress_class, "rules": rules },
        }));
    }
    documents.push(job(options, &namespace, &["migrate-tenant"], version));
    documents.extend(network_policies(options, &namespace, &labels, database));
    documents.push(json!({
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": metadata("tenant", &namespace, &labels),
        "spec": { "hard": {
            "pods": "10",
            "requests.cpu": "1",
            "requests.memory": "1Gi",
            "limits.cpu": "4",
            "limits.memory": "2Gi",
            "services.loadbalancers": "0",
            "services.nodeports": "0",
        } },
    }));
    yaml::documents(&documents)
}

/// Nothing in or out of the namespace but what it needs: the ingress controller and the
/// shared server to the tenant's server, and the pods to DNS and to the database (its
/// address only, when it is an IP).
fn network_policies(
    options: &KubernetesOptions,
    namespace: &str,
    labels: &Value,
    database: &str,
) -> Vec<Value> {
    let policy = |name: &str, spec: Value| {
        json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": metadata(name, namespace, labels),
            "spec": spec,
        })
    };
    let (host, port) = database.rsplit_once(':').unwrap_or((database, "5432"));
    let port: u16 = port.parse().unwrap_or(5432);
    let mut to_database = json!({ "ports": [{ "protocol": "TCP", "port": port }] });
    if let Ok(ip) = host.trim_matches(['[', ']']).parse::<IpAddr>() {
        let prefix = if ip.is_ipv4() { 32 } else { 128 };
        to_database["to"] = json!([{ "ipBlock": { "cidr": format!("{ip}/{prefix}") } }]);
    }
    let routers: Vec<Value> = [options.ingress_namespace.as_str(), "tenantry"]
        .into_iter()
        .map(|from| {
            json!({ "namespaceSelector": { "matchLabels": {
                "kubernetes.io/metadata.name": from,
            } } })
        })
        .collect();
    vec![
        policy(
            "deny-by-default",
            json!({ "podSelector": {}, "policyTypes": ["Ingress", "Egress"] }),
        ),
        policy(
            "allow-routers",
            json!({
                "podSelector": { "matchLabels": labels },
                "policyTypes": ["Ingress"],
                "ingress": [{
                    "from": routers,
                    "ports": [{ "protocol": "TCP", "port": APP_PORT }],
                }],
            }),
        ),
        policy(
            "allow-dns-and-database",
            json!({
                "podSelector": {},
                "policyTypes": ["Egress"],
                "egress": [
                    { "ports": [{ "protocol": "UDP", "port": 53 }, { "protocol": "TCP", "port": 53 }] },
                    to_database,
                ],
            }),
        ),
    ]
}
