//! Resolving the paths a module writes to the modules they name: the edges of the graph.

use std::path::PathBuf;

use super::tree::ModuleTree;

/// How many `use` hops a path may take before it is given up on (re-exports of re-exports).
const MAX_HOPS: usize = 16;

/// One module naming something in another.
#[derive(Clone, Debug)]
pub(crate) struct Edge {
    /// The module that names.
    pub(crate) from: usize,
    /// The deepest module the path resolves to.
    pub(crate) to: usize,
    /// Where the path is written.
    pub(crate) file: PathBuf,
    /// Its line.
    pub(crate) line: usize,
}

/// Every edge of the tree: each mention resolved, self-references left out.
pub(crate) fn edges(tree: &ModuleTree) -> Vec<Edge> {
    let mut out = Vec::new();
    for (from, module) in tree.modules.iter().enumerate() {
        for mention in &module.mentions {
            if let Some((to, _)) = resolve(tree, from, &mention.segments, 0)
                && to != from
            {
                out.push(Edge {
                    from,
                    to,
                    file: mention.file.clone(),
                    line: mention.line,
                });
            }
        }
    }
    out
}

/// The module `segments` names when written in module `from`, and whether every segment was a
/// module (`true`) or the path went on into an item of that module (`false`). `None` when the
/// path names nothing of this crate (another crate, `std`, a local name).
fn resolve(
    tree: &ModuleTree,
    from: usize,
    segments: &[String],
    hops: usize,
) -> Option<(usize, bool)> {
    if hops > MAX_HOPS {
        return None;
    }
    let first = segments.first()?;
    match first.as_str() {
        "crate" | "$crate" => walk(tree, 0, &segments[1..], hops),
        "self" => walk(tree, from, &segments[1..], hops),
        "super" => walk(tree, from, segments, hops),
        name => {
            let module = &tree.modules[from];
            if module.children.contains_key(name) || module.imports.contains_key(name) {
                walk(tree, from, segments, hops)
            } else {
                None
            }
        }
    }
}

fn walk(
    tree: &ModuleTree,
    start: usize,
    segments: &[String],
    hops: usize,
) -> Option<(usize, bool)> {
    let mut current = start;
    for (i, segment) in segments.iter().enumerate() {
        let module = &tree.modules[current];
        match segment.as_str() {
            "super" => {
                current = module.parent?;
                continue;
            }
            "self" => continue,
            _ => {}
        }
        if let Some(&child) = module.children.get(segment) {
            current = child;
            continue;
        }
        if let Some(target) = module.imports.get(segment) {
            let (resolved, whole) = resolve(tree, current, target, hops + 1)?;
            return if whole {
                walk(tree, resolved, &segments[i + 1..], hops + 1)
            } else {
                Some((resolved, false))
            };
        }
        for glob in &module.globs {
            let Some((source, true)) = resolve(tree, current, glob, hops + 1) else {
                continue;
            };
            let found = &tree.modules[source];
            if found.children.contains_key(segment)
                || found.imports.contains_key(segment)
                || found.items.contains(segment)
            {
                return walk(tree, source, &segments[i..], hops + 1);
            }
        }
        return Some((current, false));
    }
    Some((current, true))
}
