//! The one integration-test binary (one link on 2-core CI). Each module tests one command end to end
//! through the real `stack` binary.

#[path = "../support/mod.rs"]
mod support;

mod build;
mod build_determinism;
mod build_errors;
mod build_mirrors;
mod build_output;
mod catalogue;
mod catalogue_upstream;
mod cli;
mod dashboards;
mod diff;
mod ghcr;
mod helm;
mod helm_rules;
mod lock;
mod lock_cache;
mod lock_credentials;
mod lock_faults;
mod lock_grafana;
mod lock_helm_repo;
mod lock_mirrors;
mod lock_oci;
mod lock_repo_stack;
mod lock_requests;
mod lock_schedule;
mod lock_sticky;
mod lock_upstream_changes;
mod oci_limits;
mod outdated;
mod registry_echo;
mod reliability;
mod reliability_credentials;
mod reliability_integrity;
mod reliability_symlinks;
mod renovate;
mod repository;
mod values;
mod values_emitted;
