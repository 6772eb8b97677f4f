//! The polls REST API of *Building Multi Tenant Applications with Django*, on tenantry.

pub mod admin;
pub mod auth;
pub mod cli;
pub mod configuration;
pub mod console;
pub mod demo;
pub mod domain;
pub mod error;
pub mod jobs;
pub mod json;
pub mod limits;
mod path;
pub mod routes;
pub mod signup;
pub mod startup;
pub mod telemetry;
mod welcome;
