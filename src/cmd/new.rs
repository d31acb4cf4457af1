//! `stratbox new`: a strategy project in Rust, Python or JavaScript that tests and builds as
//! it stands, and the `stratbox.json` manifest through which `stratbox build` knows how to
//! build it.
//!
//! A project uses the SDKs of the checkout this binary was built from, in place (by absolute
//! path): it then builds against exactly the SDK that checkout's hosts were built and tested
//! with, at the cost of tying the project to that checkout on this machine.

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use serde::{Deserialize, Serialize};

/// The file that makes a folder a stratbox project.
pub(crate) const MANIFEST: &str = "stratbox.json";

/// Names become folder, package, module and file names in three ecosystems; this is what
/// all of them accept unchanged.
const MAX_NAME: usize = 64;

/// Package names cargo refuses although they are well-formed: Rust keywords and the
/// built-in crates. Caught here so `new` never writes a project that cannot build.
#[rustfmt::skip]
const RESERVED_BY_RUST: &[&str] = &[
    "abstract", "alloc", "as", "async", "await", "become", "box", "break", "const", "continue",
    "core", "crate", "do", "dyn", "else", "enum", "extern", "false", "final", "fn", "for", "gen",
    "if", "impl", "in", "let", "loop", "macro", "match", "mod", "move", "mut", "override",
    "priv", "proc-macro", "pub", "ref", "return", "self", "static", "std", "struct", "super",
    "test", "trait", "true", "try", "type", "typeof", "unsafe", "unsized", "use", "virtual",
    "where", "while", "yield",
];

mod templates {
    pub(super) const RUST_CARGO_TOML: &str = include_str!("templates/rust/Cargo.toml.tmpl");
    pub(super) const RUST_LIB: &str = include_str!("templates/rust/lib.rs.tmpl");
    pub(super) const RUST_GITIGNORE: &str = include_str!("templates/rust/gitignore.tmpl");
    pub(super) const PY_STRATEGY: &str = include_str!("templates/python/strategy.py.tmpl");
    pub(super) const PY_APP: &str = include_str!("templates/python/app.py.tmpl");
    pub(super) const PY_TEST: &str = include_str!("templates/python/test_strategy.py.tmpl");
    pub(super) const PY_GITIGNORE: &str = include_str!("templates/python/gitignore.tmpl");
    pub(super) const JS_STRATEGY: &str = include_str!("templates/js/strategy.js.tmpl");
    pub(super) const JS_APP: &str = include_str!("templates/js/app.js.tmpl");
    pub(super) const JS_TEST: &str = include_str!("templates/js/strategy.test.js.tmpl");
    pub(super) const JS_PACKAGE: &str = include_str!("templates/js/package.json.tmpl");
    pub(super) const JS_GITIGNORE: &str = include_str!("templates/js/gitignore.tmpl");
}

#[derive(clap::Args)]
pub struct Args {
    /// The strategy's name: lowercase letters, digits and `-`, starting with a letter, at
    /// most 64 characters. The folder, the package and the component are named after it.
    name: String,
    /// The language to write it in.
    #[arg(long, value_enum)]
    lang: Lang,
    /// The folder to create the project folder NAME in.
    #[arg(long, default_value = ".")]
    dir: PathBuf,
}

/// The languages a project can be written in, as `--lang` and `stratbox.json` spell them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Rust,
    Python,
    Js,
}

impl Lang {
    const ALL: [Lang; 3] = [Lang::Rust, Lang::Python, Lang::Js];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
            Lang::Js => "js",
        }
    }

    fn parse(text: &str) -> Option<Lang> {
        Lang::ALL.into_iter().find(|lang| lang.as_str() == text)
    }
}

/// A project as its manifest describes it.
pub(crate) struct Project {
    pub(crate) name: String,
    pub(crate) lang: Lang,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    check_name(&args.name, args.lang)?;
    let sdk = repo().join("guest-sdk");
    if !sdk.is_dir() {
        bail!(
            "{} is missing: this stratbox was built from {}, and a new project uses the SDK there",
            sdk.display(),
            repo().display()
        );
    }
    let entries = entries(args.lang, &args.name)?;
    // As typed, so the `cd` line below is the one the user would write.
    let shown = if args.dir == Path::new(".") {
        PathBuf::from(&args.name)
    } else {
        args.dir.join(&args.name)
    };
    create(&args.dir.join(&args.name), &entries)?;
    print_created(&shown, &args.name, args.lang, &entries);
    Ok(())
}

/// The repository this binary was built from: projects use its SDKs and build scripts in
/// place.
pub(crate) fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Refuses a name that some ecosystem would refuse or mangle, before anything is written.
pub(crate) fn check_name(name: &str, lang: Lang) -> anyhow::Result<()> {
    let well_formed = name.len() <= MAX_NAME
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !well_formed {
        bail!(
            "invalid name {name:?}: use lowercase letters, digits and `-`, starting with a letter, at most {MAX_NAME} characters"
        );
    }
    if lang == Lang::Rust && RESERVED_BY_RUST.contains(&name) {
        bail!(
            "invalid name {name:?}: cargo refuses it as a package name (a Rust keyword or a built-in crate)"
        );
    }
    Ok(())
}

/// Reads DIR/stratbox.json strictly: a misspelt field must not silently pick a default.
pub(crate) fn read_manifest(dir: &Path) -> anyhow::Result<Project> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Manifest {
        name: String,
        lang: String,
    }
    let path = dir.join(MANIFEST);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "{} not found: {} is not a stratbox project (`stratbox new` makes one)",
            path.display(),
            dir.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let manifest: Manifest = serde_json::from_str(&text).with_context(|| {
        format!(
            r#"{} is not a stratbox manifest ({{"name": ..., "lang": ...}})"#,
            path.display()
        )
    })?;
    let lang = Lang::parse(&manifest.lang).ok_or_else(|| {
        anyhow!(
            "{}: unknown lang {:?} (stratbox builds rust, python and js)",
            path.display(),
            manifest.lang
        )
    })?;
    check_name(&manifest.name, lang).with_context(|| path.display().to_string())?;
    Ok(Project {
        name: manifest.name,
        lang,
    })
}

fn manifest_text(name: &str, lang: Lang) -> anyhow::Result<String> {
    #[derive(Serialize)]
    struct Manifest<'a> {
        name: &'a str,
        lang: &'static str,
    }
    let text = serde_json::to_string_pretty(&Manifest {
        name,
        lang: lang.as_str(),
    })?;
    Ok(text + "\n")
}

/// One thing a new project holds, at a path relative to its folder.
enum Entry {
    File {
        path: &'static str,
        text: String,
    },
    /// A symbolic link: how a JavaScript project reaches the SDK by a relative import that
    /// also resolves once `strategies/js/build.sh` has staged the sources.
    Link {
        path: &'static str,
        target: PathBuf,
    },
}

impl Entry {
    fn path(&self) -> &'static str {
        match self {
            Entry::File { path, .. } | Entry::Link { path, .. } => path,
        }
    }
}

fn entries(lang: Lang, name: &str) -> anyhow::Result<Vec<Entry>> {
    use templates::*;
    let file = |path: &'static str, template: &str| Entry::File {
        path,
        text: render(template, name),
    };
    let mut out = vec![Entry::File {
        path: MANIFEST,
        text: manifest_text(name, lang)?,
    }];
    match lang {
        Lang::Rust => {
            out.push(file("Cargo.toml", RUST_CARGO_TOML));
            out.push(file("src/lib.rs", RUST_LIB));
            out.push(file(".gitignore", RUST_GITIGNORE));
            // The checkout's lock file: the first build then uses the versions the SDK was
            // tested with (and already downloaded); cargo drops what the project does not use.
            if let Ok(lock) = std::fs::read_to_string(repo().join("Cargo.lock")) {
                out.push(Entry::File {
                    path: "Cargo.lock",
                    text: lock,
                });
            }
        }
        Lang::Python => {
            out.push(file("strategy.py", PY_STRATEGY));
            out.push(file("app.py", PY_APP));
            out.push(file("test_strategy.py", PY_TEST));
            out.push(file(".gitignore", PY_GITIGNORE));
        }
        Lang::Js => {
            out.push(file("strategy.js", JS_STRATEGY));
            out.push(file("app.js", JS_APP));
            out.push(file("strategy.test.js", JS_TEST));
            out.push(file("package.json", JS_PACKAGE));
            out.push(file(".gitignore", JS_GITIGNORE));
            out.push(Entry::Link {
                path: "stratbox",
                target: js_sdk(),
            });
        }
    }
    Ok(out)
}

fn js_sdk() -> PathBuf {
    repo().join("guest-sdk").join("js").join("stratbox")
}

fn python_sdk() -> PathBuf {
    repo().join("guest-sdk").join("python")
}

/// Fills a template's `@@KEY@@` markers: a syntax that no Rust format string, f-string or
/// template literal in the templates uses.
fn render(template: &str, name: &str) -> String {
    let rust_sdk = repo().join("guest-sdk");
    template
        .replace("@@NAME@@", name)
        .replace(
            "@@SDK_TOML@@",
            &toml_escape(&rust_sdk.display().to_string()),
        )
        .replace("@@SDK_PYTHON@@", &python_sdk().display().to_string())
        .replace("@@SDK_JS@@", &js_sdk().display().to_string())
}

/// The inside of a TOML basic string: a checkout path may hold `\` or `"`.
fn toml_escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Creates the project folder, refusing one that exists: `new` never writes into someone's
/// files. A failure half-way removes what it made, so retrying is not refused as "exists".
fn create(project: &Path, entries: &[Entry]) -> anyhow::Result<()> {
    if let Some(parent) = project.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    match std::fs::create_dir(project) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => bail!(
            "{} already exists; choose another name or --dir",
            project.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("creating {}", project.display())),
    }
    let written = write_entries(project, entries);
    if written.is_err() {
        let _ = std::fs::remove_dir_all(project);
    }
    written
}

fn write_entries(project: &Path, entries: &[Entry]) -> anyhow::Result<()> {
    for entry in entries {
        let path = project.join(entry.path());
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let written = match entry {
            Entry::File { text, .. } => std::fs::write(&path, text),
            Entry::Link { target, .. } => std::os::unix::fs::symlink(target, &path),
        };
        written.with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn print_created(shown: &Path, name: &str, lang: Lang, entries: &[Entry]) {
    println!(
        "created {} ({} strategy {name}):",
        shown.display(),
        lang.as_str()
    );
    for entry in entries {
        match entry {
            Entry::File { path, .. } => println!("  {path}"),
            Entry::Link { path, target } => println!("  {path} -> {}", target.display()),
        }
    }
    println!();
    println!("next:");
    println!("  cd {}", shown.display());
    println!("  {}", test_command(lang));
    println!("  stratbox build    # makes target/{name}.wasm and checks it as a host would");
}

/// How a project's own tests run, from its folder.
fn test_command(lang: Lang) -> String {
    match lang {
        Lang::Rust => "cargo test".to_owned(),
        Lang::Python => format!("PYTHONPATH={} python3 -m unittest", python_sdk().display()),
        Lang::Js => "node --test".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_rule_every_ecosystem_accepts() {
        let longest = "a".repeat(MAX_NAME);
        let too_long = "a".repeat(MAX_NAME + 1);
        for good in ["a", "demo-rust", "x1-2", longest.as_str()] {
            assert!(check_name(good, Lang::Rust).is_ok(), "{good}");
        }
        for bad in [
            "",
            "1abc",
            "-abc",
            "Abc",
            "a_b",
            "a.b",
            "a b",
            "é",
            too_long.as_str(),
        ] {
            assert!(check_name(bad, Lang::Python).is_err(), "{bad:?}");
        }
        assert!(check_name("test", Lang::Rust).is_err());
        assert!(check_name("test", Lang::Js).is_ok());
    }

    #[test]
    fn every_marker_of_every_template_is_filled() {
        for lang in Lang::ALL {
            for entry in entries(lang, "demo").expect("entries") {
                if let Entry::File { path, text } = entry {
                    assert!(!text.contains("@@"), "{path} of {lang:?} keeps a marker");
                }
            }
        }
    }

    #[test]
    fn the_manifest_reads_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = manifest_text("demo", Lang::Js).expect("manifest");
        std::fs::write(dir.path().join(MANIFEST), text).expect("write");
        let project = read_manifest(dir.path()).expect("read back");
        assert_eq!((project.name.as_str(), project.lang), ("demo", Lang::Js));

        std::fs::write(
            dir.path().join(MANIFEST),
            r#"{"name": "demo", "lang": "go"}"#,
        )
        .expect("write");
        let e = format!("{:#}", read_manifest(dir.path()).err().expect("refused"));
        assert!(e.contains("unknown lang \"go\""), "{e}");
    }
}
