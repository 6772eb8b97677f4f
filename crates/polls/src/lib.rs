//! The polls REST API of *Building Multi Tenant Applications with Django*, on tenantry.

pub mod auth;
pub mod error;
pub mod json;
pub mod routes;
