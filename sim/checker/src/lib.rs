//! minikv-checker: linearizability and snapshot-isolation checkers over Jepsen-shaped histories.
//!
//! A standalone library: no store, no madsim. The `minikv-check` binary behind
//! `cargo xtask check` is a thin front end over it.

pub mod bank;
pub mod history;
pub mod html;
pub mod lin;
pub mod parse;
pub mod report;
pub mod si;
pub mod tso;

pub use parse::{ParseError, parse_file, parse_file_with, parse_history, parse_history_with};
