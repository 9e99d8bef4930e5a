//! One file per command family; each holds its arguments (clap types), calls the libraries
//! and prints. `args.rs` routes a parsed command line to its family.

pub mod agent;
pub mod bench;
pub mod board;
pub mod completions;
pub mod cp;
pub mod demo;
pub mod download;
pub mod forget;
pub mod fs;
pub mod gpio;
pub mod history;
pub mod hub;
pub mod keys;
pub mod logs;
pub mod ls;
pub mod node;
pub mod python;
pub mod repl;
pub mod request;
pub mod scripts;
pub mod send;
pub mod system;
pub mod token;
pub mod user;
pub mod watch;
