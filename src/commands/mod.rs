//! The subcommands: thin layers that parse arguments, call the library and print.

pub mod build;
pub mod diff;
pub mod docs;
pub mod graph;
pub mod init;
pub mod lock;
pub mod outdated;
