//! Cycles among sibling modules, each edge lifted to the children of the closest common
//! ancestor (see the parent module's doc for why).

use std::collections::{BTreeMap, BTreeSet};

use super::resolve::Edge;
use super::tree::ModuleTree;

/// How many cycles are listed per group of siblings before the rest are only counted.
const MAX_CYCLES_PER_GROUP: usize = 50;

/// One cycle: the sibling modules in order, and the written paths behind each of its edges.
#[derive(Debug)]
pub(crate) struct Cycle {
    /// Module names, the first repeated at the end: `a -> b -> a`.
    pub(crate) modules: Vec<String>,
    /// For each step `modules[i] -> modules[i+1]`, the places that make it.
    pub(crate) evidence: Vec<Vec<String>>,
}

impl std::fmt::Display for Cycle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{}", self.modules.join(" -> "))?;
        for (step, places) in self.modules.windows(2).zip(&self.evidence) {
            let shown: Vec<&str> = places.iter().take(3).map(String::as_str).collect();
            let more = places.len().saturating_sub(shown.len());
            let more = if more > 0 {
                format!(" (+{more} more)")
            } else {
                String::new()
            };
            writeln!(
                f,
                "    {} -> {}: {}{more}",
                step[0],
                step[1],
                shown.join(", ")
            )?;
        }
        Ok(())
    }
}

/// Every cycle among siblings in the tree, in a stable order.
pub(crate) fn find_cycles(tree: &ModuleTree, edges: &[Edge]) -> Vec<Cycle> {
    // Per common ancestor: sibling -> sibling -> places.
    let mut groups: BTreeMap<usize, BTreeMap<usize, BTreeMap<usize, Vec<String>>>> =
        BTreeMap::new();
    for edge in edges {
        let Some((ancestor, a, b)) = lifted(tree, edge.from, edge.to) else {
            continue;
        };
        let mut place = format!("{}:{}", edge.file.display(), edge.line);
        if edge.from != a || edge.to != b {
            place.push_str(&format!(
                " ({} names {})",
                tree.modules[edge.from].display(),
                tree.modules[edge.to].display()
            ));
        }
        groups
            .entry(ancestor)
            .or_default()
            .entry(a)
            .or_default()
            .entry(b)
            .or_default()
            .push(place);
    }
    let mut out = Vec::new();
    for graph in groups.values() {
        let mut found = 0;
        for component in strongly_connected(graph) {
            if component.len() < 2 {
                continue;
            }
            for path in elementary_cycles(graph, &component) {
                if found == MAX_CYCLES_PER_GROUP {
                    break;
                }
                found += 1;
                let mut modules: Vec<String> =
                    path.iter().map(|&m| tree.modules[m].display()).collect();
                modules.push(tree.modules[path[0]].display());
                let evidence = path
                    .iter()
                    .zip(path.iter().cycle().skip(1))
                    .map(|(a, b)| graph[a][b].clone())
                    .collect();
                out.push(Cycle { modules, evidence });
            }
        }
    }
    out
}

/// The closest common ancestor of `from` and `to` and its two children that hold them, or
/// `None` when one is an ancestor of the other.
fn lifted(tree: &ModuleTree, from: usize, to: usize) -> Option<(usize, usize, usize)> {
    let chain = |mut m: usize| {
        let mut up = vec![m];
        while let Some(parent) = tree.modules[m].parent {
            up.push(parent);
            m = parent;
        }
        up.reverse();
        up
    };
    let (a, b) = (chain(from), chain(to));
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    if common == a.len() || common == b.len() {
        return None;
    }
    Some((a[common - 1], a[common], b[common]))
}

type Graph = BTreeMap<usize, BTreeMap<usize, Vec<String>>>;

fn successors(graph: &Graph, node: usize) -> impl Iterator<Item = usize> + '_ {
    graph
        .get(&node)
        .into_iter()
        .flat_map(|next| next.keys().copied())
}

/// Tarjan's strongly connected components, each sorted, in a stable order.
fn strongly_connected(graph: &Graph) -> Vec<Vec<usize>> {
    struct State {
        index: BTreeMap<usize, usize>,
        low: BTreeMap<usize, usize>,
        stack: Vec<usize>,
        on_stack: BTreeSet<usize>,
        out: Vec<Vec<usize>>,
    }
    fn visit(graph: &Graph, node: usize, s: &mut State) {
        let i = s.index.len();
        s.index.insert(node, i);
        s.low.insert(node, i);
        s.stack.push(node);
        s.on_stack.insert(node);
        for next in successors(graph, node) {
            if !s.index.contains_key(&next) {
                visit(graph, next, s);
                let low = s.low[&node].min(s.low[&next]);
                s.low.insert(node, low);
            } else if s.on_stack.contains(&next) {
                let low = s.low[&node].min(s.index[&next]);
                s.low.insert(node, low);
            }
        }
        if s.low[&node] == s.index[&node] {
            let mut component = Vec::new();
            while let Some(top) = s.stack.pop() {
                s.on_stack.remove(&top);
                component.push(top);
                if top == node {
                    break;
                }
            }
            component.sort_unstable();
            s.out.push(component);
        }
    }
    let mut state = State {
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    let nodes: BTreeSet<usize> = graph
        .iter()
        .flat_map(|(from, to)| std::iter::once(*from).chain(to.keys().copied()))
        .collect();
    for node in nodes {
        if !state.index.contains_key(&node) {
            visit(graph, node, &mut state);
        }
    }
    state.out.sort();
    state.out
}

/// Each elementary cycle inside one component once, starting at its smallest node.
fn elementary_cycles(graph: &Graph, component: &[usize]) -> Vec<Vec<usize>> {
    fn extend(
        graph: &Graph,
        allowed: &BTreeSet<usize>,
        start: usize,
        path: &mut Vec<usize>,
        out: &mut Vec<Vec<usize>>,
    ) {
        if out.len() > MAX_CYCLES_PER_GROUP {
            return;
        }
        let Some(&last) = path.last() else { return };
        for next in successors(graph, last) {
            if next == start {
                out.push(path.clone());
            } else if next > start && allowed.contains(&next) && !path.contains(&next) {
                path.push(next);
                extend(graph, allowed, start, path, out);
                path.pop();
            }
        }
    }
    let allowed: BTreeSet<usize> = component.iter().copied().collect();
    let mut out = Vec::new();
    for &start in component {
        extend(graph, &allowed, start, &mut vec![start], &mut out);
    }
    out
}
