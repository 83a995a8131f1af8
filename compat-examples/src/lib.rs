//! The documented examples of the published `execra` 1.1, compiled against
//! this crate: what an app upgrading from 1.1 has in its code.
//!
//! Each snippet is copied from the 1.1 package (`README.md`, `RUNTIME.md`,
//! `INTERPRETER.md`, `examples/`) into a function, with only the
//! surrounding scaffolding added (a function signature, the variables a
//! snippet assumes). Where a snippet needed a change to compile against 2.0,
//! the change is marked `// 2.0:` and is one that `UPGRADING.md` lists. A
//! snippet that is wrong in the 1.1 docs themselves (it never compiled) is
//! marked `// 1.1 doc error:`.
//!
//! The Tauri snippets are behind this crate's `tauri` feature (it builds
//! Tauri): `cargo check -p execra-compat-examples --features tauri`.
//! `tests/examples.rs` runs the ones that run on their own.

#![allow(dead_code, clippy::new_without_default)]

pub mod interpreter_md;
pub mod move1_acceptance;
pub mod readme;
pub mod runtime_md;
pub mod scoop_doctor;
pub mod scoop_install;
#[cfg(feature = "tauri")]
pub mod tauri_snippets;
