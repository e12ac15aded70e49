//! A crate's module tree, the imports between its modules, and the cycles among them.
//!
//! An equivalent of `cargo modules dependencies --acyclic`, small enough to build with the
//! workspace: it reads `mod` declarations (files, `#[path]` and inline `mod x { }`) from a crate
//! root, and takes an edge from every path that names something of the same crate (`use
//! crate::…`, `super::…`, `self::…`, a child module's name, and qualified paths in code and in
//! macro bodies), resolved to the deepest existing module, following `use` and `pub use`
//! re-exports (named and glob) to where the item lives.
//!
//! How edges count:
//! - An edge from a module to one of its ancestors (a child naming `super::` or `crate::` items)
//!   is the usual Rust layering and never part of a cycle; so is an edge from a module to one of
//!   its descendants (a parent re-exporting its child's items).
//! - Any other edge joins two modules under their closest common ancestor, and counts as an
//!   edge between the two children of that ancestor that contain them: `a::x` naming `b::y`
//!   is `a -> b`. Cycles are looked for among the children of each module: siblings
//!   (`a -> b -> a`) and, through this lifting, cousins (`a::x -> b::y -> a::z`).
//! - Items under `#[cfg(test)]` (test modules such as `mod tests;`, test-only imports and
//!   functions) are left out, as `cargo modules` leaves them out without `--cfg-test`: they are
//!   not part of the module structure the crate ships.

mod cycles;
mod resolve;
mod tree;

#[cfg(test)]
mod tests;

pub(crate) use cycles::find_cycles;
pub(crate) use resolve::edges;
pub(crate) use tree::{DiskSources, MemorySources, ModuleTree};
