//! Emission: turning a plan, the lock and the vendored dashboards into the Flux tree. Each file here owns
//! one kind of output; all of them produce bytes in memory, so `build --check` and the tree hash see
//! exactly what would be written.

pub mod dashboard;
pub mod datasource_refs;
pub mod flux;
pub mod json_text;
pub mod library_panels;
pub mod objects;
pub mod promql;
pub mod provisioning;
pub mod staging;
pub mod tree;
pub mod yaml;
