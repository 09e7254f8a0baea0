//! The subcommands: thin layers that parse arguments, call the library and print.

pub mod build;
pub mod lock;
