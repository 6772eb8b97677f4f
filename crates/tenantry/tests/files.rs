//! Tenants' files: names that could leave a tenant's prefix are refused, two tenants' files
//! of one name stay apart (through the extractor too), and files keep every byte through a
//! rename, a move, an export and import, and go with their tenant.

use crate::support;

use std::path::Path;

use axum::Router;
use axum::body::Bytes;
use axum::extract::Path as UrlPath;
use axum::http::StatusCode;
use axum::routing::get;
use support::{call, slug};
use tenantry::files::{Files, TenantFiles};
use tenantry::lifecycle::MoveTarget;
use tenantry::{
    Error, IsolationMode, NewTenant, Tenancy, TenancyLayer, TenancyOptions, TenantUpdate,
};
use tower::Layer;

const HOSTILE: [&str; 16] = [
    "../escape",
    "/etc/passwd",
    "a/../../b",
    "..",
    ".",
    "a//b",
    "a/",
    ".hidden",
    "a/.git/config",
    "a\\..\\b",
    "a\0b",
    "",
    "%2e%2e/x",
    "a b",
    "ü.txt",
    "C:\\Windows",
];

async fn tenancy(dir: &Path) -> (support::Setup, Tenancy) {
    with_files(Files::local(dir.join("files")).unwrap()).await
}

/// A catalog on a new database whose tenants' files are in `files`.
async fn with_files(files: Files) -> (support::Setup, Tenancy) {
    let s = support::setup(8).await;
    let options = TenancyOptions {
        files: Some(files),
        ..TenancyOptions::default()
    };
    let tenancy = s.with_options(options).await;
    (s, tenancy)
}

/// Every file under `dir`, relative to it.
fn tree(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(next) = stack.pop() {
        for entry in std::fs::read_dir(&next).unwrap() {
            let path = entry.unwrap().path();
            match path.is_dir() {
                true => stack.push(path),
                false => found.push(path.strip_prefix(dir).unwrap().display().to_string()),
            }
        }
    }
    found.sort();
    found
}

#[tokio::test]
async fn names_that_could_leave_the_tenants_prefix_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_s, tenancy) = tenancy(dir.path()).await;
    tenancy
        .create_tenant(NewTenant::new(slug("thor"), IsolationMode::Schema))
        .await
        .unwrap();
    let files = tenancy.tenant_files(&slug("thor")).await.unwrap();
    let long = "x".repeat(256);
    for name in HOSTILE.iter().copied().chain([long.as_str()]) {
        for refused in [
            files.put(name, "x").await.err(),
            files.get(name).await.err(),
            files.delete(name).await.err(),
        ] {
            assert!(
                matches!(
                    refused,
                    Some(Error::Invalid {
                        field: "file name",
                        ..
                    })
                ),
                "{name:?}: {refused:?}"
            );
        }
    }
    files.put("reports/2026/q4.csv", "a,b\n").await.unwrap();
    let id = tenancy
        .catalog()
        .by_slug(&slug("thor"))
        .await
        .unwrap()
        .unwrap()
        .id;
    assert_eq!(
        tree(dir.path()),
        [format!("files/tenants/{id}/reports/2026/q4.csv")],
        "nothing was written anywhere else"
    );
}

/// `GET/PUT /files/{*name}`: the request's tenant's files.
async fn get_file(files: TenantFiles, UrlPath(name): UrlPath<String>) -> Result<Bytes, StatusCode> {
    match files.get(&name).await {
        Ok(Some(bytes)) => Ok(bytes),
        Ok(None) => Err(StatusCode::NOT_FOUND),
        Err(Error::Invalid { .. }) => Err(StatusCode::BAD_REQUEST),
        Err(_) => Err(StatusCode::INTERNAL_SERVER_ERROR),
    }
}

async fn put_file(files: TenantFiles, UrlPath(name): UrlPath<String>, body: Bytes) -> StatusCode {
    match files.put(&name, body).await {
        Ok(_) => StatusCode::CREATED,
        Err(Error::Invalid { .. }) => StatusCode::BAD_REQUEST,
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

#[tokio::test]
async fn two_tenants_files_of_one_name_stay_apart() {
    let dir = tempfile::tempdir().unwrap();
    let (_s, tenancy) = tenancy(dir.path()).await;
    for name in ["thor", "odin"] {
        tenancy
            .create_tenant(NewTenant::new(slug(name), IsolationMode::Shared))
            .await
            .unwrap();
    }
    let routes = Router::new().route("/files/{*name}", get(get_file).put(put_file));
    let app = Router::new().fallback_service(TenancyLayer::new(tenancy.clone()).layer(routes));
    let put = |host: &'static str, path: &'static str, body: &'static str| {
        let app = app.clone();
        async move {
            let request = axum::http::Request::put(path)
                .header("host", host)
                .body(axum::body::Body::from(body))
                .unwrap();
            tower::ServiceExt::oneshot(app, request)
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(
        put("thor.app.test", "/files/logo.txt", "thor's").await,
        StatusCode::CREATED
    );
    let (status, _) = call(&app, "GET", "odin.app.test", "/files/logo.txt").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "odin has no such file");
    assert_eq!(
        put("odin.app.test", "/files/logo.txt", "odin's").await,
        StatusCode::CREATED
    );
    let (_, thor) = call(&app, "GET", "thor.app.test", "/files/logo.txt").await;
    assert_eq!(thor, "thor's");
    for hostile in [
        "/files/..%2F..%2Fescape",
        "/files/a/..%2F..%2Fb",
        "/files/.hidden",
    ] {
        assert_eq!(
            put("thor.app.test", hostile, "x").await,
            StatusCode::BAD_REQUEST,
            "{hostile}"
        );
    }
    let odin = tenancy.tenant_files(&slug("odin")).await.unwrap();
    assert_eq!(odin.list("").await.unwrap().len(), 1);
}

#[tokio::test]
async fn files_keep_every_byte_through_rename_move_export_and_import_and_go_with_their_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let (_s, tenancy) = tenancy(dir.path()).await;
    for name in ["thor", "odin"] {
        tenancy
            .create_tenant(NewTenant::new(slug(name), IsolationMode::Schema))
            .await
            .unwrap();
    }
    let thor = tenancy.tenant_files(&slug("thor")).await.unwrap();
    let binary: Vec<u8> = (0..=255u8).cycle().take(300_000).collect();
    thor.put("images/big.bin", binary.clone()).await.unwrap();
    thor.put("notes.txt", "hello").await.unwrap();
    tenancy
        .tenant_files(&slug("odin"))
        .await
        .unwrap()
        .put("notes.txt", "odin")
        .await
        .unwrap();
    let sums = async |tenancy: &Tenancy, name: &str| {
        let files = tenancy.tenant_files(&slug(name)).await.unwrap();
        let mut sums = Vec::new();
        for file in files.list("").await.unwrap() {
            sums.push((
                file.name.clone(),
                files.checksum(&file.name).await.unwrap().unwrap(),
            ));
        }
        sums
    };
    let before = sums(&tenancy, "thor").await;
    assert_eq!(before.len(), 2);

    let rename = TenantUpdate {
        slug: Some(slug("thunder")),
        ..TenantUpdate::default()
    };
    tenancy.update_tenant(&slug("thor"), rename).await.unwrap();
    assert_eq!(sums(&tenancy, "thunder").await, before, "after the rename");
    let target = MoveTarget {
        isolation: IsolationMode::Database,
        server: None,
    };
    tenancy.move_tenant(&slug("thunder"), target).await.unwrap();
    assert_eq!(
        sums(&tenancy, "thunder").await,
        before,
        "after the move to database mode"
    );

    let export = tenancy.export_tenant(&slug("thunder")).await.unwrap();
    assert_eq!(export.files.len(), 2);
    let mut damaged = export.clone();
    damaged.files[0].sha256 = "0".repeat(64);
    let refused = tenancy
        .import_tenant(damaged, Some(slug("broken")), None)
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("does not match its checksum"),
        "{refused}"
    );
    assert!(
        tenancy
            .catalog()
            .by_slug(&slug("broken"))
            .await
            .unwrap()
            .is_none()
    );
    tenancy
        .import_tenant(export, Some(slug("copy")), Some(IsolationMode::Shared))
        .await
        .unwrap();
    assert_eq!(sums(&tenancy, "copy").await, before, "imported");
    assert_eq!(
        tenancy
            .tenant_files(&slug("copy"))
            .await
            .unwrap()
            .get("images/big.bin")
            .await
            .unwrap()
            .unwrap(),
        binary
    );

    let id = tenancy
        .catalog()
        .by_slug(&slug("thunder"))
        .await
        .unwrap()
        .unwrap()
        .id;
    tenancy.delete_tenant(&slug("thunder")).await.unwrap();
    assert!(
        !tree(dir.path()).iter().any(|f| f.contains(&id.to_string())),
        "the deleted tenant's files went with it"
    );
    assert_eq!(sums(&tenancy, "odin").await.len(), 1, "the others' stay");
}

/// An S3-compatible server: moto's standalone server (`pip install 'moto[server]'`), the one
/// this machine can run, on a free port, stopped when dropped.
struct S3Server {
    child: std::process::Child,
    port: u16,
}

impl S3Server {
    async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let server = Self {
            child: std::process::Command::new("moto_server")
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("this test needs an S3-compatible server: pip install 'moto[server]'"),
            port,
        };
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return server;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        drop(server);
        panic!("moto_server did not listen on port {port}");
    }

    /// Creates `bucket` with a plain HTTP PUT, as S3 does.
    async fn bucket(&self, bucket: &str) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .unwrap();
        let request = format!(
            "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).await.unwrap();
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn the_same_rules_hold_on_s3_compatible_storage() {
    let server = S3Server::start().await;
    server.bucket("tenantry").await;
    let endpoint = format!("http://127.0.0.1:{}", server.port);
    let files = Files::from_url_with(
        "s3://tenantry/install-1",
        &[
            ("aws_endpoint", &endpoint),
            ("aws_allow_http", "true"),
            ("aws_region", "us-east-1"),
            ("aws_access_key_id", "test"),
            ("aws_secret_access_key", "test"),
        ],
    )
    .unwrap();
    let (_s, tenancy) = with_files(files).await;
    for name in ["thor", "odin"] {
        tenancy
            .create_tenant(NewTenant::new(slug(name), IsolationMode::Schema))
            .await
            .unwrap();
    }
    let thor = tenancy.tenant_files(&slug("thor")).await.unwrap();
    let odin = tenancy.tenant_files(&slug("odin")).await.unwrap();
    thor.put("exports/a.csv", "thor").await.unwrap();
    odin.put("exports/a.csv", "odin").await.unwrap();
    assert_eq!(thor.get("exports/a.csv").await.unwrap().unwrap(), "thor");
    assert_eq!(odin.get("exports/a.csv").await.unwrap().unwrap(), "odin");
    assert_eq!(thor.list("exports/").await.unwrap().len(), 1);
    for name in HOSTILE {
        assert!(thor.put(name, "x").await.is_err(), "{name:?}");
    }
    let before = thor.checksum("exports/a.csv").await.unwrap().unwrap();
    let target = MoveTarget {
        isolation: IsolationMode::Shared,
        server: None,
    };
    tenancy.move_tenant(&slug("thor"), target).await.unwrap();
    let moved = tenancy.tenant_files(&slug("thor")).await.unwrap();
    assert_eq!(
        moved.checksum("exports/a.csv").await.unwrap().unwrap(),
        before
    );
    tenancy.delete_tenant(&slug("thor")).await.unwrap();
    assert!(
        thor.list("").await.unwrap().is_empty(),
        "deleted with its tenant"
    );
    assert!(thor.delete("exports/a.csv").await.is_ok_and(|had| !had));
    assert_eq!(
        odin.get("exports/a.csv").await.unwrap().unwrap(),
        "odin",
        "the other's stays"
    );
}
