//! Every integration test of the crate, in one binary: one link instead of one per file.

mod support;

mod admin;
mod api;
mod browser;
mod browser_platform;
mod cached_list;
mod cli;
mod console;
mod custom_domains;
mod deploy;
mod files;
mod hostile_input;
mod jobs;
mod platform_api;
mod serve;
mod signup;
mod walkthrough;
