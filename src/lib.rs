//! scimd — a self-hosted SCIM 2.0 provisioning appliance.

pub mod db;
pub mod scim;
