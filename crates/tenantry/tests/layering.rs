//! The layering rule, read from the sources of both crates: no import cycle between the
//! library's top-level modules, and no import circle between files anywhere. A file's imports
//! are the `crate::`, `super::` and `self::` paths it names outside its unit tests; a folder's
//! `mod.rs` (and the crate root) may name what is inside its own folder, which it declares.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// A module path, `["http", "layer"]` for `src/http/layer.rs`.
type ModPath = Vec<String>;

struct Source {
    file: PathBuf,
    module: ModPath,
    /// A `mod.rs`, `lib.rs` or `main.rs`: the file of a folder's own module.
    folder: bool,
    text: String,
}

fn sources(src: &Path) -> Vec<Source> {
    let mut found = Vec::new();
    let mut folders = vec![src.to_path_buf()];
    while let Some(dir) = folders.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(src).unwrap();
            let mut module: ModPath = relative
                .with_extension("")
                .iter()
                .map(|c| c.to_string_lossy().into_owned())
                .collect();
            let folder = matches!(
                module.last().map(String::as_str),
                Some("mod" | "lib" | "main")
            );
            if folder {
                module.pop();
            }
            let text = fs::read_to_string(&path).unwrap();
            found.push(Source {
                file: relative.to_path_buf(),
                module,
                folder,
                text,
            });
        }
    }
    found
}

/// The text without comments and without the unit tests at its end.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(cut) => &text[..cut],
        None => text,
    };
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every path a `use` tree names, `a::{b, c::d}` giving `a::b` and `a::c::d`.
fn expand(tree: &str, prefix: &str, out: &mut Vec<String>) {
    let tree = tree.trim();
    match tree.find('{') {
        None => out.push(format!(
            "{prefix}{}",
            tree.split(" as ").next().unwrap().trim()
        )),
        Some(open) => {
            let head = &tree[..open];
            let inner = &tree[open + 1..tree.rfind('}').unwrap()];
            let (mut depth, mut start) = (0, 0);
            for (i, c) in inner.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        expand(&inner[start..i], &format!("{prefix}{head}"), out);
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            if !inner[start..].trim().is_empty() {
                expand(&inner[start..], &format!("{prefix}{head}"), out);
            }
        }
    }
}

/// The `crate::`, `super::` and `self::` paths the code names, with their line numbers.
fn paths(code: &str) -> Vec<(usize, String)> {
    let line_of = |at: usize| code[..at].matches('\n').count() + 1;
    let mut found = Vec::new();
    let mut rest = String::with_capacity(code.len());
    let mut at = 0;
    while let Some(start) = code[at..].find("use ").map(|i| i + at) {
        let line_start = code[..start].rfind('\n').map_or(0, |i| i + 1);
        let before = code[line_start..start].trim();
        let statement = before.is_empty()
            || before == "pub"
            || (before.starts_with("pub(") && before.ends_with(')'));
        let end = code[start..].find(';').map(|i| i + start);
        match (statement, end) {
            (true, Some(end)) => {
                rest.push_str(&code[at..start]);
                let mut expanded = Vec::new();
                expand(&code[start + 4..end], "", &mut expanded);
                found.extend(expanded.into_iter().map(|p| (line_of(start), p)));
                rest.push_str(&"\n".repeat(code[start..end].matches('\n').count()));
                at = end + 1;
            }
            _ => {
                rest.push_str(&code[at..start + 4]);
                at = start + 4;
            }
        }
    }
    rest.push_str(&code[at..]);
    for root in ["crate::", "super::", "self::"] {
        for (i, _) in rest.match_indices(root) {
            if i > 0 {
                let before = rest.as_bytes()[i - 1];
                if before.is_ascii_alphanumeric() || before == b'_' || before == b':' {
                    continue;
                }
            }
            let len = rest[i..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(rest.len() - i);
            found.push((line_of_in(&rest, i), rest[i..i + len].to_string()));
        }
    }
    found
}

fn line_of_in(text: &str, at: usize) -> usize {
    text[..at].matches('\n').count() + 1
}

/// The file a path in `from` leads to: the deepest module of the path that has a file.
fn target<'a>(from: &Source, path: &str, files: &'a BTreeMap<ModPath, usize>) -> Option<&'a usize> {
    let mut segments = path.split("::").filter(|s| !s.is_empty());
    let mut module: ModPath = match segments.next()? {
        "crate" => Vec::new(),
        "self" => from.module.clone(),
        "super" => {
            let mut m = from.module.clone();
            m.pop();
            m
        }
        _ => return None,
    };
    for s in segments {
        match s {
            "super" => {
                module.pop();
            }
            "self" => {}
            s => module.push(s.to_string()),
        }
    }
    while !module.is_empty() {
        if let Some(file) = files.get(&module) {
            return Some(file);
        }
        module.pop();
    }
    None
}

/// Import edges between files: `edges[a][b]` is where file `a` first names file `b`.
fn edges(sources: &[Source]) -> BTreeMap<usize, BTreeMap<usize, String>> {
    let files: BTreeMap<ModPath, usize> = sources
        .iter()
        .enumerate()
        .map(|(i, s)| (s.module.clone(), i))
        .collect();
    let mut edges: BTreeMap<usize, BTreeMap<usize, String>> = BTreeMap::new();
    for (i, source) in sources.iter().enumerate() {
        for (line, path) in paths(&code(&source.text)) {
            let Some(&to) = target(source, &path, &files) else {
                continue;
            };
            let inside = sources[to].module.starts_with(&source.module);
            if to == i || (source.folder && inside) {
                continue;
            }
            edges
                .entry(i)
                .or_default()
                .entry(to)
                .or_insert_with(|| format!("{}:{line} `{path}`", source.file.display()));
        }
    }
    edges
}

/// The groups of nodes that reach each other (Tarjan), each with more than one node.
fn circles(nodes: usize, edges: &BTreeMap<usize, BTreeSet<usize>>) -> Vec<Vec<usize>> {
    struct Walk<'a> {
        edges: &'a BTreeMap<usize, BTreeSet<usize>>,
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        stack: Vec<usize>,
        on: Vec<bool>,
        next: usize,
        found: Vec<Vec<usize>>,
    }
    impl Walk<'_> {
        fn visit(&mut self, v: usize) {
            self.index[v] = Some(self.next);
            self.low[v] = self.next;
            self.next += 1;
            self.stack.push(v);
            self.on[v] = true;
            for &w in self.edges.get(&v).into_iter().flatten() {
                match self.index[w] {
                    None => {
                        self.visit(w);
                        self.low[v] = self.low[v].min(self.low[w]);
                    }
                    Some(index) if self.on[w] => self.low[v] = self.low[v].min(index),
                    Some(_) => {}
                }
            }
            if Some(self.low[v]) == self.index[v] {
                let mut group = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on[w] = false;
                    group.push(w);
                    if w == v {
                        break;
                    }
                }
                if group.len() > 1 {
                    group.sort();
                    self.found.push(group);
                }
            }
        }
    }
    let mut walk = Walk {
        edges,
        index: vec![None; nodes],
        low: vec![0; nodes],
        stack: Vec::new(),
        on: vec![false; nodes],
        next: 0,
        found: Vec::new(),
    };
    for v in 0..nodes {
        if walk.index[v].is_none() {
            walk.visit(v);
        }
    }
    walk.found
}

/// The circles of `edges` over `names`, each with the lines that tie it, for a failure message.
fn report(names: &[String], edges: &BTreeMap<usize, BTreeMap<usize, String>>) -> Vec<String> {
    let plain = edges
        .iter()
        .map(|(a, to)| (*a, to.keys().copied().collect()))
        .collect();
    circles(names.len(), &plain)
        .into_iter()
        .map(|group| {
            let ties: Vec<&str> = group
                .iter()
                .flat_map(|a| {
                    edges[a]
                        .iter()
                        .filter(|(b, _)| group.contains(b))
                        .map(|(_, at)| at.as_str())
                })
                .collect();
            let members: Vec<&str> = group.iter().map(|&i| names[i].as_str()).collect();
            format!("{}: {}", members.join(", "), ties.join("; "))
        })
        .collect()
}

fn src_of(krate: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(krate)
        .join("src")
}

#[test]
fn no_file_imports_a_file_that_imports_it_back() {
    for krate in ["tenantry", "polls"] {
        let sources = sources(&src_of(krate));
        let names: Vec<String> = sources
            .iter()
            .map(|s| s.file.display().to_string())
            .collect();
        let found = report(&names, &edges(&sources));
        assert!(
            found.is_empty(),
            "import circles between files of {krate}:\n{}",
            found.join("\n")
        );
    }
}

#[test]
fn the_top_level_modules_import_each_other_in_layers() {
    for krate in ["tenantry", "polls"] {
        let sources = sources(&src_of(krate));
        let mut names: Vec<String> = sources
            .iter()
            .filter_map(|s| s.module.first().cloned())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        names.push(String::new());
        let top = |s: &Source| {
            let name = s.module.first().cloned().unwrap_or_default();
            names.iter().position(|n| *n == name).unwrap()
        };
        let mut modules: BTreeMap<usize, BTreeMap<usize, String>> = BTreeMap::new();
        for (a, to) in edges(&sources) {
            for (b, at) in to {
                let (ta, tb) = (top(&sources[a]), top(&sources[b]));
                if ta != tb && !names[ta].is_empty() && !names[tb].is_empty() {
                    modules.entry(ta).or_default().entry(tb).or_insert(at);
                }
            }
        }
        let found = report(&names, &modules);
        assert!(
            found.is_empty(),
            "import cycles between the top-level modules of {krate}:\n{}",
            found.join("\n")
        );
    }
}

#[test]
fn the_reader_sees_a_circle_when_there_is_one() {
    let file = |name: &str, text: &str| Source {
        file: PathBuf::from(format!("{name}.rs")),
        module: vec![name.to_string()],
        folder: false,
        text: text.to_string(),
    };
    let sources = [
        file("a", "use crate::{b::{self, X}, c as see};\nfn f() {}"),
        file("b", "fn g() { crate::c::h(); }"),
        file(
            "c",
            "pub(crate) use super::a::f;\n#[cfg(test)]\nmod tests { use crate::b; }",
        ),
        file("d", "// use crate::a;\nfn k() { crate::a::f() }"),
    ];
    let names: Vec<String> = ["a.rs", "b.rs", "c.rs", "d.rs"].map(String::from).to_vec();
    let found = report(&names, &edges(&sources));
    assert_eq!(
        found,
        [concat!(
            "a.rs, b.rs, c.rs: a.rs:1 `crate::b::self`; a.rs:1 `crate::c`; ",
            "b.rs:1 `crate::c::h`; c.rs:1 `super::a::f`"
        )]
    );
}
