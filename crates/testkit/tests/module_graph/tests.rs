//! The detector on small synthetic crates, so the workspace check cannot pass vacuously.

use std::path::Path;

use super::{MemorySources, ModuleTree, edges, find_cycles};

/// The cycles of a synthetic crate rooted at `src/lib.rs`, one line per cycle.
fn cycles_of(files: &[(&str, &str)]) -> Vec<String> {
    let sources = MemorySources::new(files);
    let tree = ModuleTree::load(&sources, Path::new("src/lib.rs")).unwrap();
    find_cycles(&tree, &edges(&tree))
        .iter()
        .map(|cycle| cycle.modules.join(" -> "))
        .collect()
}

#[test]
fn two_siblings_naming_each_other_are_a_cycle_with_each_edge_located() {
    let sources = MemorySources::new(&[
        ("src/lib.rs", "mod a;\nmod b;\n"),
        ("src/a.rs", "use crate::b::Thing;\npub struct Other;\n"),
        (
            "src/b.rs",
            "pub struct Thing;\n\nfn f() -> super::a::Other { todo!() }\n",
        ),
    ]);
    let tree = ModuleTree::load(&sources, Path::new("src/lib.rs")).unwrap();
    let cycles = find_cycles(&tree, &edges(&tree));
    assert_eq!(cycles.len(), 1, "{cycles:?}");
    let shown = cycles[0].to_string();
    assert!(shown.starts_with("a -> b -> a\n"), "{shown}");
    assert!(shown.contains("a -> b: src/a.rs:1"), "{shown}");
    assert!(shown.contains("b -> a: src/b.rs:3"), "{shown}");
}

#[test]
fn an_acyclic_tree_passes() {
    let found = cycles_of(&[
        ("src/lib.rs", "mod a;\nmod b;\nmod c;\npub use a::Top;\n"),
        (
            "src/a.rs",
            "use crate::b::Middle;\npub struct Top(Middle);\n",
        ),
        ("src/b.rs", "pub struct Middle(crate::c::Bottom);\n"),
        ("src/c.rs", "pub struct Bottom;\n"),
    ]);
    assert!(found.is_empty(), "{found:?}");
}

#[test]
fn a_three_module_cycle_is_found_once() {
    let found = cycles_of(&[
        ("src/lib.rs", "mod a;\nmod b;\nmod c;\n"),
        ("src/a.rs", "pub fn a() { crate::b::b() }\n"),
        ("src/b.rs", "pub fn b() { crate::c::c() }\n"),
        ("src/c.rs", "pub fn c() { crate::a::a() }\n"),
    ]);
    assert_eq!(found, vec!["a -> b -> c -> a"]);
}

#[test]
fn a_child_naming_its_ancestors_is_layering_not_a_cycle() {
    let found = cycles_of(&[
        (
            "src/lib.rs",
            "mod parent;\npub use parent::child::Leaf;\npub struct Error;\n",
        ),
        (
            "src/parent/mod.rs",
            "pub mod child;\npub struct Shared;\nfn f(_: child::Leaf) {}\n",
        ),
        (
            "src/parent/child.rs",
            "use super::Shared;\npub struct Leaf(Shared, crate::Error);\n",
        ),
    ]);
    assert!(found.is_empty(), "{found:?}");
}

#[test]
fn cousins_naming_each_other_are_a_cycle_between_their_parents() {
    let found = cycles_of(&[
        ("src/lib.rs", "mod a;\nmod b;\n"),
        ("src/a/mod.rs", "pub mod x;\n"),
        ("src/a/x.rs", "pub struct X(crate::b::y::Y);\n"),
        (
            "src/b.rs",
            "pub mod y {\n    pub struct Y(Box<crate::a::x::X>);\n}\n",
        ),
    ]);
    assert_eq!(found, vec!["a -> b -> a"]);
}

#[test]
fn a_pub_use_re_export_is_followed_to_where_the_item_lives() {
    // `a` names `crate::Thing`, which the root re-exports from `b`: the edge is a -> b.
    let found = cycles_of(&[
        ("src/lib.rs", "mod a;\nmod b;\npub use b::Thing;\n"),
        ("src/a.rs", "pub struct Other(crate::Thing);\n"),
        (
            "src/b.rs",
            "pub struct Thing;\nfn f(_: crate::a::Other) {}\n",
        ),
    ]);
    assert_eq!(found, vec!["a -> b -> a"]);
    // The same through a glob re-export in a facade module.
    let found = cycles_of(&[
        ("src/lib.rs", "mod a;\nmod b;\nmod facade;\n"),
        ("src/facade.rs", "pub use crate::b::*;\n"),
        (
            "src/a.rs",
            "use crate::facade::Thing;\npub struct Other(Thing);\n",
        ),
        (
            "src/b.rs",
            "pub struct Thing;\nfn f(_: crate::a::Other) {}\n",
        ),
    ]);
    assert_eq!(found, vec!["a -> b -> a"]);
}

#[test]
fn an_imported_module_name_used_later_makes_the_edge() {
    let found = cycles_of(&[
        ("src/lib.rs", "mod a;\nmod b;\n"),
        ("src/a.rs", "use crate::b;\npub fn a() { b::b() }\n"),
        (
            "src/b.rs",
            "pub fn b() { let _ = format!(\"{:?}\", crate::a::a()); }\n",
        ),
    ]);
    assert_eq!(found, vec!["a -> b -> a"], "a path inside a macro counts");
}

#[test]
fn test_only_modules_and_imports_are_left_out() {
    let found = cycles_of(&[
        ("src/lib.rs", "mod a;\nmod b;\n"),
        (
            "src/a.rs",
            "pub struct A;\n#[cfg(test)]\nmod tests {\n    use crate::b::B;\n}\n",
        ),
        (
            "src/b.rs",
            "pub struct B(crate::a::A);\n#[cfg(test)]\n#[path = \"b_tests.rs\"]\nmod tests;\n",
        ),
    ]);
    assert!(found.is_empty(), "{found:?}");
    // Without the cfg the same inline module is part of the tree, and the cycle is found.
    let found = cycles_of(&[
        ("src/lib.rs", "mod a;\nmod b;\n"),
        (
            "src/a.rs",
            "pub struct A;\nmod tests {\n    use crate::b::B;\n}\n",
        ),
        ("src/b.rs", "pub struct B(crate::a::A);\n"),
    ]);
    assert_eq!(found, vec!["a -> b -> a"]);
}

#[test]
fn a_missing_module_file_is_an_error_not_an_empty_tree() {
    let sources = MemorySources::new(&[("src/lib.rs", "mod gone;\n")]);
    let error = ModuleTree::load(&sources, Path::new("src/lib.rs")).unwrap_err();
    assert!(error.contains("`mod gone;` has no file"), "{error}");
}

#[test]
fn names_of_other_crates_and_locals_make_no_edges() {
    let sources = MemorySources::new(&[
        ("src/lib.rs", "mod a;\nmod b;\n"),
        (
            "src/a.rs",
            "use std::fmt;\nfn f(x: fmt::Arguments) { let b = 1; serde_json::json!({\"b\": b}); }\n",
        ),
        ("src/b.rs", "fn g() -> crate::a::Nothing { todo!() }\n"),
    ]);
    let tree = ModuleTree::load(&sources, Path::new("src/lib.rs")).unwrap();
    let found: Vec<(usize, usize)> = edges(&tree).iter().map(|e| (e.from, e.to)).collect();
    assert_eq!(found, vec![(2, 1)], "only b -> a");
}
