//! Every integration test of the crate, in one binary: one link instead of one per file.

mod support;

mod budget;
mod cache;
mod cancel_storm;
mod cluster_smoke;
mod conformance;
mod custom_domains;
mod database_mode;
mod dedicated;
mod doc_examples;
mod files;
mod isolation;
mod jobs;
mod layering;
mod lifecycle;
mod migrate;
mod moving;
mod pending;
mod pgbouncer;
mod restart;
mod retention;
mod servers;
mod shared_mode;
mod sqlite_mode;
