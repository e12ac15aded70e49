//! The module tree of one crate root, built from `mod` declarations, with what each module
//! defines, imports and names.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use syn::visit::Visit;

/// Where source files come from: the disk for the real workspace, a map for synthetic trees.
pub(crate) trait Sources {
    /// The text of `path`, or `None` when there is no such file.
    fn read(&self, path: &Path) -> Option<String>;
}

/// Source files read from the disk, paths taken relative to `base` (so reports show short
/// paths such as `crates/check/src/lib.rs:3`).
pub(crate) struct DiskSources {
    /// The directory paths are relative to.
    pub(crate) base: PathBuf,
}

impl Sources for DiskSources {
    fn read(&self, path: &Path) -> Option<String> {
        std::fs::read_to_string(self.base.join(path)).ok()
    }
}

/// Source files held in memory, for tests of the detector itself.
#[derive(Default)]
pub(crate) struct MemorySources(HashMap<PathBuf, String>);

impl MemorySources {
    /// A set of files from `(path, text)` pairs.
    pub(crate) fn new(files: &[(&str, &str)]) -> Self {
        Self(
            files
                .iter()
                .map(|(path, text)| (PathBuf::from(path), (*text).to_owned()))
                .collect(),
        )
    }
}

impl Sources for MemorySources {
    fn read(&self, path: &Path) -> Option<String> {
        self.0.get(path).cloned()
    }
}

/// A path naming something, as written, where it was written.
#[derive(Clone, Debug)]
pub(crate) struct Mention {
    /// The path's segments (`crate`, `super`, `self` kept as written).
    pub(crate) segments: Vec<String>,
    /// The file the path is in.
    pub(crate) file: PathBuf,
    /// Its line (1-based).
    pub(crate) line: usize,
}

/// One module of the tree.
#[derive(Debug)]
pub(crate) struct Module {
    /// Its path from the crate root (empty for the root).
    pub(crate) path: Vec<String>,
    /// Its parent's index (`None` for the root).
    pub(crate) parent: Option<usize>,
    /// Its child modules by name.
    pub(crate) children: BTreeMap<String, usize>,
    /// Names brought in by `use`, and the path each stands for.
    pub(crate) imports: BTreeMap<String, Vec<String>>,
    /// The paths of its glob imports (`use a::*`).
    pub(crate) globs: Vec<Vec<String>>,
    /// Names of the items it defines.
    pub(crate) items: BTreeSet<String>,
    /// Every path in it that may name something of the same crate.
    pub(crate) mentions: Vec<Mention>,
}

impl Module {
    /// Its name for reports: `a::b`, or `crate` for the root.
    pub(crate) fn display(&self) -> String {
        if self.path.is_empty() {
            "crate".to_owned()
        } else {
            self.path.join("::")
        }
    }
}

/// The modules of one crate root; index 0 is the root.
#[derive(Debug)]
pub(crate) struct ModuleTree {
    /// All modules, parents before their children.
    pub(crate) modules: Vec<Module>,
}

impl ModuleTree {
    /// Reads the crate whose root file is `root` (`src/lib.rs` or `src/main.rs`).
    pub(crate) fn load(sources: &dyn Sources, root: &Path) -> Result<Self, String> {
        let mut tree = Self {
            modules: vec![Module {
                path: Vec::new(),
                parent: None,
                children: BTreeMap::new(),
                imports: BTreeMap::new(),
                globs: Vec::new(),
                items: BTreeSet::new(),
                mentions: Vec::new(),
            }],
        };
        let dir = root.parent().map(Path::to_path_buf).unwrap_or_default();
        tree.load_file(sources, 0, root, &dir)?;
        Ok(tree)
    }

    fn load_file(
        &mut self,
        sources: &dyn Sources,
        module: usize,
        file: &Path,
        children_dir: &Path,
    ) -> Result<(), String> {
        let text = sources
            .read(file)
            .ok_or_else(|| format!("{}: cannot be read", file.display()))?;
        let parsed =
            syn::parse_file(&text).map_err(|e| format!("{}: not Rust: {e}", file.display()))?;
        self.load_items(sources, module, file, children_dir, &parsed.items)
    }

    fn load_items(
        &mut self,
        sources: &dyn Sources,
        module: usize,
        file: &Path,
        children_dir: &Path,
        items: &[syn::Item],
    ) -> Result<(), String> {
        for item in items {
            if test_only(item_attrs(item)) {
                continue;
            }
            match item {
                syn::Item::Mod(declared) => {
                    self.load_child(sources, module, file, children_dir, declared)?;
                }
                syn::Item::Use(used) if used.leading_colon.is_none() => {
                    let mut leaves = Vec::new();
                    use_leaves(&used.tree, &mut Vec::new(), &mut leaves);
                    let node = &mut self.modules[module];
                    for leaf in leaves {
                        node.mentions.push(Mention {
                            segments: leaf.path.clone(),
                            file: file.to_path_buf(),
                            line: leaf.line,
                        });
                        match leaf.bound {
                            Bound::Glob => node.globs.push(leaf.path),
                            Bound::Name(name) => {
                                node.imports.insert(name, leaf.path);
                            }
                            Bound::Nothing => {}
                        }
                    }
                }
                other => {
                    if let Some(name) = item_name(other) {
                        self.modules[module].items.insert(name);
                    }
                    let mut collector = Collector {
                        file,
                        mentions: Vec::new(),
                    };
                    collector.visit_item(other);
                    self.modules[module].mentions.extend(collector.mentions);
                }
            }
        }
        Ok(())
    }

    fn load_child(
        &mut self,
        sources: &dyn Sources,
        parent: usize,
        file: &Path,
        children_dir: &Path,
        declared: &syn::ItemMod,
    ) -> Result<(), String> {
        let name = declared.ident.to_string();
        let mut path = self.modules[parent].path.clone();
        path.push(name.clone());
        let index = self.modules.len();
        self.modules.push(Module {
            path,
            parent: Some(parent),
            children: BTreeMap::new(),
            imports: BTreeMap::new(),
            globs: Vec::new(),
            items: BTreeSet::new(),
            mentions: Vec::new(),
        });
        self.modules[parent].children.insert(name.clone(), index);
        if let Some((_, items)) = &declared.content {
            return self.load_items(sources, index, file, &children_dir.join(&name), items);
        }
        let candidates = match path_attribute(&declared.attrs) {
            Some(explicit) => {
                let base = file.parent().map(Path::to_path_buf).unwrap_or_default();
                vec![base.join(explicit)]
            }
            None => vec![
                children_dir.join(format!("{name}.rs")),
                children_dir.join(&name).join("mod.rs"),
            ],
        };
        let child_file = candidates
            .iter()
            .find(|candidate| sources.read(candidate).is_some())
            .ok_or_else(|| {
                format!(
                    "{}: `mod {name};` has no file (looked for {})",
                    file.display(),
                    candidates
                        .iter()
                        .map(|c| c.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?
            .clone();
        let grandchildren_dir = if child_file.file_name().is_some_and(|n| n == "mod.rs") {
            child_file
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default()
        } else {
            children_dir.join(&name)
        };
        self.load_file(sources, index, &child_file, &grandchildren_dir)
    }
}

/// What a `use` leaf binds in its module.
enum Bound {
    Name(String),
    Glob,
    Nothing,
}

struct UseLeaf {
    path: Vec<String>,
    bound: Bound,
    line: usize,
}

fn use_leaves(tree: &syn::UseTree, prefix: &mut Vec<String>, out: &mut Vec<UseLeaf>) {
    match tree {
        syn::UseTree::Path(step) => {
            prefix.push(step.ident.to_string());
            use_leaves(&step.tree, prefix, out);
            prefix.pop();
        }
        syn::UseTree::Name(leaf) => {
            let (path, name) = joined(prefix, &leaf.ident);
            out.push(UseLeaf {
                path,
                bound: name.map_or(Bound::Nothing, Bound::Name),
                line: leaf.ident.span().start().line,
            });
        }
        syn::UseTree::Rename(leaf) => {
            let (path, _) = joined(prefix, &leaf.ident);
            let alias = leaf.rename.to_string();
            out.push(UseLeaf {
                path,
                bound: if alias == "_" {
                    Bound::Nothing
                } else {
                    Bound::Name(alias)
                },
                line: leaf.ident.span().start().line,
            });
        }
        syn::UseTree::Glob(star) => out.push(UseLeaf {
            path: prefix.clone(),
            bound: Bound::Glob,
            line: star.star_token.span.start().line,
        }),
        syn::UseTree::Group(group) => {
            for tree in &group.items {
                use_leaves(tree, prefix, out);
            }
        }
    }
}

/// The path a `use` leaf stands for, and the name it binds (`a::{self}` binds `a`).
fn joined(prefix: &[String], ident: &syn::Ident) -> (Vec<String>, Option<String>) {
    let mut path = prefix.to_vec();
    if ident == "self" {
        let name = path.last().cloned();
        (path, name)
    } else {
        path.push(ident.to_string());
        (path, Some(ident.to_string()))
    }
}

/// Collects every path of two or more segments in an item, and paths written in macro bodies.
struct Collector<'a> {
    file: &'a Path,
    mentions: Vec<Mention>,
}

impl<'ast> Visit<'ast> for Collector<'_> {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        if !test_only(item_attrs(item)) {
            syn::visit::visit_item(self, item);
        }
    }

    fn visit_impl_item(&mut self, item: &'ast syn::ImplItem) {
        let attrs = match item {
            syn::ImplItem::Const(i) => &i.attrs,
            syn::ImplItem::Fn(i) => &i.attrs,
            syn::ImplItem::Type(i) => &i.attrs,
            syn::ImplItem::Macro(i) => &i.attrs,
            _ => return syn::visit::visit_impl_item(self, item),
        };
        if !test_only(attrs) {
            syn::visit::visit_impl_item(self, item);
        }
    }

    fn visit_item_use(&mut self, used: &'ast syn::ItemUse) {
        if used.leading_colon.is_some() {
            return;
        }
        let mut leaves = Vec::new();
        use_leaves(&used.tree, &mut Vec::new(), &mut leaves);
        for leaf in leaves {
            self.mentions.push(Mention {
                segments: leaf.path,
                file: self.file.to_path_buf(),
                line: leaf.line,
            });
        }
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        if path.leading_colon.is_none() && path.segments.len() >= 2 {
            let segments = path.segments.iter().map(|s| s.ident.to_string()).collect();
            let line = path
                .segments
                .first()
                .map_or(0, |s| s.ident.span().start().line);
            self.mentions.push(Mention {
                segments,
                file: self.file.to_path_buf(),
                line,
            });
        }
        syn::visit::visit_path(self, path);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        syn::visit::visit_macro(self, mac);
        let mut run = Vec::new();
        macro_paths(mac.tokens.clone(), &mut run, self.file, &mut self.mentions);
    }
}

/// Finds `a::b::c` runs in a macro's tokens (including `$crate::…`), which `syn` leaves unparsed.
fn macro_paths(
    tokens: proc_macro2::TokenStream,
    run: &mut Vec<(String, usize)>,
    file: &Path,
    out: &mut Vec<Mention>,
) {
    use proc_macro2::{Spacing, TokenTree};
    let flush = |run: &mut Vec<(String, usize)>, out: &mut Vec<Mention>| {
        if run.len() >= 2 {
            out.push(Mention {
                segments: run.iter().map(|(s, _)| s.clone()).collect(),
                file: file.to_path_buf(),
                line: run[0].1,
            });
        }
        run.clear();
    };
    let tokens: Vec<TokenTree> = tokens.into_iter().collect();
    let mut i = 0;
    // Whether the last thing seen was a `::` that a following identifier extends.
    let mut after_colons = false;
    let mut dollar = false;
    while i < tokens.len() {
        match &tokens[i] {
            TokenTree::Ident(ident) => {
                let name = if dollar {
                    format!("${ident}")
                } else {
                    ident.to_string()
                };
                if !after_colons {
                    flush(run, out);
                }
                run.push((name, ident.span().start().line));
                after_colons = false;
                dollar = false;
            }
            TokenTree::Punct(p)
                if p.as_char() == ':'
                    && p.spacing() == Spacing::Joint
                    && matches!(tokens.get(i + 1), Some(TokenTree::Punct(q)) if q.as_char() == ':') =>
            {
                i += 1;
                after_colons = !run.is_empty();
                dollar = false;
            }
            TokenTree::Punct(p) if p.as_char() == '$' => {
                flush(run, out);
                after_colons = false;
                dollar = true;
            }
            TokenTree::Group(group) => {
                flush(run, out);
                after_colons = false;
                dollar = false;
                macro_paths(group.stream(), run, file, out);
                flush(run, out);
            }
            _ => {
                flush(run, out);
                after_colons = false;
                dollar = false;
            }
        }
        i += 1;
    }
    flush(run, out);
}

fn item_attrs(item: &syn::Item) -> &[syn::Attribute] {
    match item {
        syn::Item::Const(i) => &i.attrs,
        syn::Item::Enum(i) => &i.attrs,
        syn::Item::ExternCrate(i) => &i.attrs,
        syn::Item::Fn(i) => &i.attrs,
        syn::Item::ForeignMod(i) => &i.attrs,
        syn::Item::Impl(i) => &i.attrs,
        syn::Item::Macro(i) => &i.attrs,
        syn::Item::Mod(i) => &i.attrs,
        syn::Item::Static(i) => &i.attrs,
        syn::Item::Struct(i) => &i.attrs,
        syn::Item::Trait(i) => &i.attrs,
        syn::Item::TraitAlias(i) => &i.attrs,
        syn::Item::Type(i) => &i.attrs,
        syn::Item::Union(i) => &i.attrs,
        syn::Item::Use(i) => &i.attrs,
        _ => &[],
    }
}

fn item_name(item: &syn::Item) -> Option<String> {
    let ident = match item {
        syn::Item::Const(i) => &i.ident,
        syn::Item::Enum(i) => &i.ident,
        syn::Item::Fn(i) => &i.sig.ident,
        syn::Item::Macro(i) => i.ident.as_ref()?,
        syn::Item::Static(i) => &i.ident,
        syn::Item::Struct(i) => &i.ident,
        syn::Item::Trait(i) => &i.ident,
        syn::Item::TraitAlias(i) => &i.ident,
        syn::Item::Type(i) => &i.ident,
        syn::Item::Union(i) => &i.ident,
        _ => return None,
    };
    Some(ident.to_string())
}

/// Whether the attributes hold `#[cfg(test)]`.
fn test_only(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|attr| {
        attr.path().is_ident("cfg")
            && attr
                .meta
                .require_list()
                .is_ok_and(|list| list.tokens.to_string() == "test")
    })
}

/// The file named by `#[path = "…"]`, if any.
fn path_attribute(attrs: &[syn::Attribute]) -> Option<String> {
    attrs.iter().find_map(|attr| {
        if !attr.path().is_ident("path") {
            return None;
        }
        match &attr.meta.require_name_value().ok()?.value {
            syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(text),
                ..
            }) => Some(text.value()),
            _ => None,
        }
    })
}
