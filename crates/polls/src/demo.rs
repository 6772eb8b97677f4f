//! `polls demo`: two tenants with sample polls, ready to try, then the server.

use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, Connection};
use tenantry::cli::{CliError, MigrateArgs};
use tenantry::{NewTenant, Pooler, Slug, Tenancy, TenantUpdate};

use crate::auth::{hash_password, new_token_key, token_for};
use crate::configuration::Settings;
use crate::domain::polls::now;
use crate::startup;

/// A demo poll: its question and choices.
type DemoPoll = (&'static str, &'static [&'static str]);

/// The demo tenants: slug, display name, user, and their polls.
const TENANTS: [(&str, &str, &str, &[DemoPoll]); 2] = [
    (
        "thor",
        "Thor",
        "thor",
        &[
            (
                "Who is the strongest Avenger?",
                &["Thor", "Hulk", "Captain Marvel"],
            ),
            ("Best weapon?", &["Mjolnir", "Stormbreaker"]),
        ],
    ),
    (
        "potter",
        "Potter",
        "harry",
        &[
            (
                "Which house is the best?",
                &["Gryffindor", "Ravenclaw", "Hufflepuff", "Slytherin"],
            ),
            ("Favourite spell?", &["Expelliarmus", "Expecto Patronum"]),
        ],
    ),
];

const PASSWORD: &str = "demo-password";

/// The demo's operator of the console (with [`PASSWORD`]).
const OPERATOR: &str = "demo";

/// Creates the database (PostgreSQL) or data directory (SQLite) if needed, migrates, seeds
/// the demo tenants, prints how to use them and serves.
pub async fn run(settings: &Settings) -> Result<(), CliError> {
    let migrations = startup::migrations();
    let args = MigrateArgs {
        jobs: 4,
        verify: false,
        check: false,
        wave_size: None,
    };
    let tenancy = match &settings.database_url {
        Some(url) => {
            ensure_database(url, settings.database_pooler).await?;
            let pool = startup::connect(url, settings.pool_size, settings.database_pooler).await?;
            let options = settings.options().map_err(CliError::usage)?;
            tenantry::cli::migrate_shared(&pool, &migrations, &options).await?;
            let tenancy = startup::open(settings).await?;
            tenantry::cli::migrate_tenants(&tenancy, &args, None, &settings.serving.bind).await?;
            println!("PostgreSQL: {}", redacted(url));
            tenancy
        }
        None => {
            let tenancy = startup::open(settings).await?;
            tenantry::cli::migrate_tenants(&tenancy, &args, None, &settings.serving.bind).await?;
            println!(
                "SQLite: {} (set DATABASE_URL to use PostgreSQL)",
                settings.data_dir.display()
            );
            tenancy
        }
    };
    let port = settings
        .serving
        .bind
        .rsplit_once(':')
        .map_or("80", |(_, p)| p);
    let base = &settings.base_domain;
    set_up_tenants(&tenancy, base, port).await?;
    println!("  by path: http://{base}:{port}/t/thor/polls/");
    let token = settings
        .serving
        .platform_token
        .clone()
        .unwrap_or_else(new_token_key);
    println!(
        "\nPlatform API: curl -H 'Authorization: Bearer {token}' http://{base}:{port}/api/tenants/\n"
    );
    println!("Sign up a new organisation: http://{base}:{port}/signup");
    if tenancy
        .catalog()
        .operator_password_hash(OPERATOR)
        .await?
        .is_none()
    {
        let hash = hash_password(PASSWORD);
        tenancy.catalog().create_operator(OPERATOR, &hash).await?;
    }
    println!("Operators' console: http://{base}:{port}/console   {OPERATOR} / {PASSWORD}\n");
    let listener = startup::listen(settings).await?;
    println!("Serving on http://{base}:{port}/ (Ctrl-C to stop)");
    // The demo shows signup open, whatever the environment says.
    let mut serving = settings.serving.clone();
    serving.platform_token = Some(token);
    serving.signup.enabled = true;
    let _checks = startup::domain_checks(&tenancy, &serving);
    let _worker = startup::job_worker(&tenancy, &serving.jobs);
    let app = startup::app_with(tenancy, &serving);
    startup::serve(listener, app, settings.serving.limits.server()).await;
    Ok(())
}

/// The demo tenants, made (thor in its own colour) unless they exist, seeded, and printed
/// with their addresses and tokens.
async fn set_up_tenants(tenancy: &Tenancy, base: &str, port: &str) -> Result<(), CliError> {
    println!("\nDemo tenants (user / password / token):");
    for (slug, name, username, polls) in TENANTS {
        let slug = Slug::parse(slug).expect("demo slugs are valid");
        if tenancy.catalog().by_slug(&slug).await?.is_none() {
            tenancy
                .create_tenant(NewTenant {
                    name: Some(name.into()),
                    ..NewTenant::new(slug.clone(), tenancy.default_isolation())
                })
                .await?;
            // thor's pages in its own colour; potter keeps the default.
            if slug.as_str() == "thor" {
                let branding = TenantUpdate {
                    settings: Some(serde_json::json!({ "primary_color": "#a4262c" })),
                    ..TenantUpdate::default()
                };
                tenancy.update_tenant(&slug, branding).await?;
            }
        }
        let token = seed(tenancy, &slug, username, polls).await?;
        println!(
            "  {:<7} http://{slug}.{base}:{port}/   {username} / {PASSWORD} / {token}",
            slug.as_str()
        );
        println!(
            "          curl -H 'Authorization: Token {token}' http://{slug}.{base}:{port}/polls/"
        );
        println!("          admin: http://{slug}.{base}:{port}/admin/");
    }
    Ok(())
}

/// `url` without its password, to print.
fn redacted(url: &str) -> String {
    tenantry::db_server::DbServerUrl::parse(url)
        .map_or_else(|_| "(invalid URL)".to_owned(), |u| u.to_string())
}

/// Creates the database named in `url` if the server does not have it yet, connecting to
/// its `postgres` database as `pooler` needs (through a transaction pooler, each statement
/// in a transaction of its own or sent whole).
async fn ensure_database(url: &str, pooler: Pooler) -> Result<(), CliError> {
    let options = PgConnectOptions::from_str(url)?;
    let name = options
        .get_database()
        .ok_or_else(|| CliError::usage("DATABASE_URL names no database"))?
        .to_owned();
    let server = pooler.connect_options(url)?.database("postgres");
    let mut conn = startup::connect_one(&server).await?;
    let mut tx = conn.begin().await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .persistent(false)
            .fetch_one(&mut *tx)
            .await?;
    tx.commit().await?;
    if !exists {
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {quoted}")))
            .execute(&mut conn)
            .await?;
        println!("created database {quoted}");
    }
    Ok(())
}

/// Adds the demo user and polls to a tenant once, and returns the user's token.
async fn seed(
    tenancy: &Tenancy,
    slug: &Slug,
    username: &str,
    polls: &[DemoPoll],
) -> Result<String, CliError> {
    let hash = hash_password(PASSWORD);
    tenancy
        .in_tenant(slug, async |db| -> Result<String, CliError> {
            db.query(
                "INSERT INTO users (username, email, password_hash, is_staff) \
                 VALUES ($1, $2, $3, true) ON CONFLICT DO NOTHING",
            )
            .bind(username)
            .bind(format!("{username}@example.com"))
            .bind(&hash)
            .execute()
            .await?;
            let user: i64 = db
                .query("SELECT id FROM users WHERE username = $1")
                .bind(username)
                .fetch_scalar()
                .await?;
            let existing: i64 = db
                .query("SELECT count(*) FROM polls")
                .fetch_scalar()
                .await?;
            if existing == 0 {
                for (question, choices) in polls {
                    let poll: i64 = db
                        .query(
                            "INSERT INTO polls (question, created_by, pub_date) \
                             VALUES ($1, $2, $3) RETURNING id",
                        )
                        .bind(question)
                        .bind(user)
                        .bind(now())
                        .fetch_scalar()
                        .await?;
                    for choice in *choices {
                        db.query("INSERT INTO choices (poll_id, choice_text) VALUES ($1, $2)")
                            .bind(poll)
                            .bind(choice)
                            .execute()
                            .await?;
                    }
                }
            }
            Ok(token_for(db, user).await?)
        })
        .await
}
