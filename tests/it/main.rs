//! The one integration-test binary (one link on 2-core CI). Each module tests one command end to end
//! through the real `stack` binary.

#[path = "../support/mod.rs"]
mod support;

mod build;
mod build_output;
mod catalogue;
mod cli;
mod dashboards;
mod diff;
mod ghcr;
mod helm;
mod helm_rules;
mod lock;
mod lock_requests;
mod oci_limits;
mod outdated;
mod registry_echo;
mod reliability;
mod renovate;
mod repository;
mod values;
