//! The shape of the house, checked rather than described: the zones are the top level, no
//! zone's crate links another zone's, and no library crate has an import circle between its
//! modules. These are the promises the README's layout section makes; a change that breaks
//! one fails here instead of quietly eroding the boundary the signer's security rests on.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// (package name, manifest directory relative to the root, names of its dependencies of
/// every kind), from `cargo metadata`, the same graph cargo builds.
fn packages() -> Vec<(String, String, BTreeSet<String>)> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--offline",
        ])
        .current_dir(root())
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata is JSON");
    let root = root();
    meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| {
            let manifest = PathBuf::from(p["manifest_path"].as_str().expect("manifest_path"));
            let dir = manifest
                .parent()
                .and_then(|d| d.strip_prefix(&root).ok())
                .map(|d| d.to_string_lossy().into_owned())
                .expect("a workspace package lives under the root");
            let deps = p["dependencies"]
                .as_array()
                .expect("dependencies")
                .iter()
                .filter_map(|d| d["name"].as_str().map(str::to_owned))
                .collect();
            (p["name"].as_str().expect("name").to_owned(), dir, deps)
        })
        .collect()
}

fn zone(dir: &str) -> Option<&'static str> {
    let top = dir.split('/').next().unwrap_or("");
    match top {
        "host" => Some("A"),
        "engine" => Some("B"),
        "signer" => Some("C"),
        _ => None,
    }
}

#[test]
fn no_zone_links_another_zones_crates() {
    let pkgs = packages();
    let zone_of: BTreeMap<&str, &str> = pkgs
        .iter()
        .filter_map(|(n, d, _)| zone(d).map(|z| (n.as_str(), z)))
        .collect();
    assert!(
        ["A", "B", "C"]
            .iter()
            .all(|z| zone_of.values().any(|v| v == z)),
        "every zone has a crate: {zone_of:?}"
    );
    let mut crossings = Vec::new();
    for (name, dir, deps) in &pkgs {
        let here = zone(dir);
        let shared = dir.starts_with("crates/");
        for dep in deps {
            let Some(&there) = zone_of.get(dep.as_str()) else {
                continue;
            };
            // A zone may use its own crates; the shared libraries may use no zone's.
            if (shared || here.is_some()) && here != Some(there) {
                crossings.push(format!("{name} ({dir}) -> {dep} (zone {there})"));
            }
        }
    }
    assert!(
        crossings.is_empty(),
        "crates linking another zone's crates:\n{}",
        crossings.join("\n")
    );
}

#[test]
fn the_zones_are_the_top_level() {
    let root = root();
    for dir in ["host", "engine", "signer", "crates", "wit", "proto"] {
        assert!(root.join(dir).is_dir(), "{dir}/ is missing");
    }
    for old in [
        "pipeline",
        "registry",
        "market",
        "contracts",
        "bus",
        "feed",
        "sim",
        "risk",
    ] {
        assert!(
            !root.join(old).join("Cargo.toml").exists(),
            "{old}/ is a crate at the top level again"
        );
    }
    // The README's layout block names every crate directory there is.
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    for (name, dir, _) in packages() {
        if dir.is_empty() || dir.starts_with("strategies/") {
            continue;
        }
        assert!(
            readme.contains(&format!("\n{dir}/ ")),
            "README's layout block does not list {dir}/ ({name})"
        );
    }
}

/// Top-level modules of a crate and the other top-level modules each one names through
/// `crate::...` (in `use` lines or paths; comments skipped).
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).expect("readable src").flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(src).expect("under src");
        let first = rel
            .components()
            .next()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .unwrap_or_default();
        let module = first.trim_end_matches(".rs").to_owned();
        if module == "lib" || module == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&f).expect("readable source");
        let refs = graph.entry(module.clone()).or_default();
        for line in text.lines() {
            let line = line.trim_start();
            if line.starts_with("//") {
                continue;
            }
            for (i, _) in line.match_indices("crate::") {
                let rest = &line[i + "crate::".len()..];
                let names: Vec<String> = if let Some(group) = rest.strip_prefix('{') {
                    // `crate::{a::X, b}`: the first segment of each item at depth 0.
                    let mut depth = 0;
                    let mut items = vec![String::new()];
                    for c in group.chars() {
                        match c {
                            '{' => depth += 1,
                            '}' if depth == 0 => break,
                            '}' => depth -= 1,
                            ',' if depth == 0 => items.push(String::new()),
                            _ => items.last_mut().expect("one item").push(c),
                        }
                    }
                    items
                        .iter()
                        .map(|s| s.trim().split("::").next().unwrap_or("").to_owned())
                        .collect()
                } else {
                    vec![
                        rest.chars()
                            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                            .collect(),
                    ]
                };
                for n in names {
                    if !n.is_empty()
                        && n != module
                        && n.chars()
                            .all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit())
                    {
                        refs.insert(n);
                    }
                }
            }
        }
    }
    graph
}

/// The strongly connected sets of more than one module (Tarjan's algorithm).
fn circles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct T<'a> {
        g: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a str) {
        t.index.insert(v, t.next);
        t.low.insert(v, t.next);
        t.next += 1;
        t.stack.push(v);
        t.on.insert(v);
        let g = t.g;
        for w in g.get(v).into_iter().flatten() {
            let Some((w, _)) = g.get_key_value(w.as_str()) else {
                continue;
            };
            let w = w.as_str();
            if !t.index.contains_key(w) {
                visit(t, w);
                let lw = t.low[w];
                let lv = t.low.get_mut(v).expect("visited");
                *lv = (*lv).min(lw);
            } else if t.on.contains(w) {
                let iw = t.index[w];
                let lv = t.low.get_mut(v).expect("visited");
                *lv = (*lv).min(iw);
            }
        }
        if t.low[v] == t.index[v] {
            let mut set = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on.remove(w);
                set.push(w.to_owned());
                if w == v {
                    break;
                }
            }
            if set.len() > 1 {
                set.sort();
                t.out.push(set);
            }
        }
    }
    let mut t = T {
        g: graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !t.index.contains_key(v.as_str()) {
            visit(&mut t, v.as_str());
        }
    }
    t.out
}

#[test]
fn the_module_graph_finds_a_planted_circle() {
    // The check below must be able to fail: two modules naming each other are a circle.
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("a.rs"), "use crate::b::X;\n").expect("write");
    std::fs::write(
        dir.path().join("b.rs"),
        "pub fn f() { crate::{c::Y, a}; }\n",
    )
    .expect("write");
    std::fs::write(
        dir.path().join("c.rs"),
        "// crate::a in a comment is no edge\n",
    )
    .expect("write");
    assert_eq!(
        circles(&module_graph(dir.path())),
        vec![vec!["a".to_owned(), "b".to_owned()]]
    );
}

#[test]
fn no_library_crate_has_an_import_circle() {
    let mut found = Vec::new();
    for (name, dir, _) in packages() {
        let src = root().join(&dir).join("src");
        if dir.is_empty() || dir.starts_with("strategies/") || !src.join("lib.rs").exists() {
            continue;
        }
        for c in circles(&module_graph(&src)) {
            found.push(format!("{name}: {}", c.join(" <-> ")));
        }
    }
    assert!(found.is_empty(), "import circles:\n{}", found.join("\n"));
}

/// The package's tests are modules of `tests/it.rs` (`autotests = false` in Cargo.toml), so a
/// file under `tests/` that is not declared there would never compile, let alone run.
#[test]
fn every_test_file_is_a_module() {
    let dir = root().join("tests");
    let it = std::fs::read_to_string(dir.join("it.rs")).expect("tests/it.rs");
    let declared: BTreeSet<String> = it
        .lines()
        .filter_map(|l| l.strip_prefix("mod ")?.strip_suffix(';'))
        .map(str::to_owned)
        .collect();
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("tests/") {
        let path = entry.expect("entry").path();
        let name = if path.is_dir() {
            path.join("mod.rs")
                .exists()
                .then(|| path.file_name().map(|n| n.to_string_lossy().into_owned()))
                .flatten()
        } else if path.extension().is_some_and(|e| e == "rs") {
            path.file_stem().map(|n| n.to_string_lossy().into_owned())
        } else {
            None
        };
        if let Some(name) = name.filter(|n| n != "it" && !declared.contains(n)) {
            missing.push(name);
        }
    }
    assert!(
        missing.is_empty(),
        "test files not declared in tests/it.rs (they would never run): {missing:?}"
    );
    assert!(
        declared.contains("layout"),
        "parsed the module list of tests/it.rs"
    );
}
