//! No crate of the workspace has an import cycle between its modules: the issue's
//! `cargo modules dependencies --acyclic` per crate, as a test that `cargo test --workspace`
//! (and so CI) runs. How edges count is in `module_graph`'s doc.

mod module_graph;

use std::path::{Path, PathBuf};

use module_graph::{DiskSources, ModuleTree, edges, find_cycles};

/// Crates whose cycles are only reported, not failed on, while other branches of issue 15
/// remove them. Every other crate, including any new one, fails on a cycle. Once these land,
/// this list is emptied (and then removed).
const CYCLES_BEING_REMOVED: &[&str] = &[];

/// Fewer modules than this means the walk missed most of the workspace.
const PLAUSIBLE_MODULES: usize = 150;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn no_crate_has_a_module_cycle() {
    let sources = DiskSources { base: workspace() };
    let crates_dir = workspace().join("crates");
    let mut names: Vec<String> = std::fs::read_dir(&crates_dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut modules = 0;
    let mut failing = Vec::new();
    let mut reported = Vec::new();
    for name in &names {
        for root in ["src/lib.rs", "src/main.rs"] {
            let root_file = Path::new("crates").join(name).join(root);
            if !sources.base.join(&root_file).exists() {
                continue;
            }
            let tree = ModuleTree::load(&sources, &root_file).unwrap();
            modules += tree.modules.len();
            for cycle in find_cycles(&tree, &edges(&tree)) {
                let line = format!("{name} ({root}): {cycle}");
                if CYCLES_BEING_REMOVED.contains(&name.as_str()) {
                    reported.push(line);
                } else {
                    failing.push(line);
                }
            }
        }
    }
    for name in CYCLES_BEING_REMOVED {
        assert!(names.iter().any(|n| n == name), "no crate named {name}");
    }
    if !reported.is_empty() {
        eprintln!(
            "module cycles being removed (reported, not failed on):\n{}",
            reported.join("")
        );
    }
    assert!(
        modules >= PLAUSIBLE_MODULES,
        "only {modules} modules found in {}",
        crates_dir.display()
    );
    assert!(failing.is_empty(), "module cycles:\n{}", failing.join(""));
}
