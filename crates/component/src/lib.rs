//! Is this file a component of the stratbox strategy world?
//!
//! Runs before anything is compiled, on bytes an author uploads, so it is layered from the
//! cheapest refusal to the most expensive: size, magic bytes, module-or-component, full
//! validation, then the component's WIT compared structurally with `wit/strategy.wit`.
//! Every refusal is one line an author can act on.
//!
//! "Of the stratbox world" means: exports `init` and `on-event` with the types of
//! `stratbox:strategy@0.1.x`, optionally `save` and `restore` together (world 0.1.1, the
//! hand-over of state in a hot swap) and `on-outcome` (world 0.2.0) and nothing else (but
//! the `exports` instance componentize-py leaves behind), and
//! imports nothing but `stratbox:strategy/{host,types}@0.1.x`,
//! `stratbox:strategy/{memory,outcomes}@0.2.x` (each imported function with its stratbox
//! type) and WASI 0.2 interfaces, which the host links but grants nothing through.
#![warn(missing_docs)]

mod needs;

pub use needs::{ComponentNeeds, component_needs};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::sync::LazyLock;
use wit_parser::{Resolve, Type, TypeDefKind, WorldId, WorldItem, WorldKey};

/// Largest component accepted unless the operator configures otherwise. The catalog's
/// strategies are a few hundred KiB; anything near this is almost certainly not a strategy.
pub const DEFAULT_MAX_COMPONENT_BYTES: usize = 32 << 20;

/// The stratbox WIT package every strategy is checked against.
const STRATEGY_WIT: &str = include_str!("../../../wit/strategy.wit");
/// 0.1.1: the 0.1.0 world plus the optional `save` and `restore`; the reference the
/// exports are compared with.
const STRATEGY_WIT_0_1_1: &str = include_str!("../../../wit/v0.1.1/strategy.wit");
/// 0.2.0: 0.1.1 plus the `memory` import and the optional `on-outcome` export; the
/// reference world since it holds every export and import of the versions before it.
const STRATEGY_WIT_0_2_0: &str = include_str!("../../../wit/v0.2.0/strategy.wit");

/// Exports every strategy has; the others of the reference world are optional.
const REQUIRED_EXPORTS: [&str; 2] = ["init", "on-event"];
/// Exports that come as a pair or not at all.
const STATE_EXPORTS: [&str; 2] = ["save", "restore"];
/// Exported only by components of world 0.2.0.
const OUTCOME_EXPORT: &str = "on-outcome";
/// The one export outside the world that is tolerated: componentize-py's pre-initialisation
/// step leaves an instance of this name behind (its interpreter's `init` and the types of
/// its symbol table). Nothing links to a strategy's exports and the host only ever calls
/// the world's functions by name, so an extra instance is unreachable; any other extra
/// export is still refused, and this one is only ever skipped, never called.
const PRE_INIT_EXPORT: &str = "exports";

/// What `stratbox strategy check` prints for a component it accepts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    /// The world the component targets, e.g. `stratbox:strategy/strategy@0.1.0`.
    pub world: String,
    /// Imported interfaces, e.g. `stratbox:strategy/host@0.1.0`, `wasi:cli/stdout@0.2.6`.
    pub imports: Vec<String>,
    /// Exported functions of the world, e.g. `init`, `on-event` (and `save`/`restore` if stateful).
    pub exports: Vec<String>,
    /// Length of the file in bytes, as checked against the size limit.
    pub size: usize,
    /// Hex sha256 of the bytes: the component's identity in the host's cache and in
    /// `strategies`.
    pub sha256: String,
    /// What one instance takes from a pooling host (core instances, memories, tables): the
    /// host places the component in a pool that fits it, or refuses it by name.
    pub needs: ComponentNeeds,
}

/// Why a file is not a stratbox strategy component.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    /// Larger than the configured limit; refused before parsing.
    #[error("file is {size} bytes, over the limit of {limit} bytes")]
    Oversized {
        /// The file's length in bytes.
        size: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// No wasm magic: not a wasm file at all.
    #[error("not WebAssembly: the file does not start with the wasm magic bytes")]
    NotWasm,
    /// A core module, which lacks the component model's typed world.
    #[error(
        "a core wasm module, not a component: build for wasm32-wasip2 (or wrap it with `wasm-tools component new`)"
    )]
    CoreModule,
    /// The file ends mid-section (an interrupted upload?); the text is the parser's.
    #[error("truncated: {0}")]
    Truncated(String),
    /// The parser or validator refused it; the text is its reason.
    #[error("malformed component: {0}")]
    Malformed(String),
    /// A compiled WIT package (types only), not an implementation.
    #[error("a WIT package, not a component")]
    WitPackage,
    /// A valid component for some other world; the text says what is missing or foreign.
    #[error("not a stratbox strategy: {0}")]
    WrongWorld(String),
}

impl CheckError {
    /// A stable snake_case label for metrics and API answers; unlike the message it never changes.
    pub fn kind(&self) -> &'static str {
        match self {
            CheckError::Oversized { .. } => "oversized",
            CheckError::NotWasm => "not_wasm",
            CheckError::CoreModule => "core_module",
            CheckError::Truncated(_) => "truncated",
            CheckError::Malformed(_) => "malformed",
            CheckError::WitPackage => "wit_package",
            CheckError::WrongWorld(_) => "wrong_world",
        }
    }
}

/// Hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Checks `bytes` against the stratbox world, refusing anything over `max_bytes`.
pub fn check_component(bytes: &[u8], max_bytes: usize) -> Result<CheckReport, CheckError> {
    if bytes.len() > max_bytes {
        return Err(CheckError::Oversized {
            size: bytes.len(),
            limit: max_bytes,
        });
    }
    check_header(bytes)?;
    validate(bytes)?;
    let decoded = wit_parser::decoding::decode(bytes)
        .map_err(|e| CheckError::Malformed(one_line(&format!("{e:#}"))))?;
    let (resolve, world) = match decoded {
        wit_parser::decoding::DecodedWasm::Component(resolve, world) => (resolve, world),
        wit_parser::decoding::DecodedWasm::WitPackage(..) => return Err(CheckError::WitPackage),
    };
    let (world_name, imports, exports) = compare_world(&resolve, world)?;
    let needs =
        component_needs(bytes).map_err(|e| CheckError::Malformed(one_line(&e.to_string())))?;
    Ok(CheckReport {
        world: world_name,
        imports,
        exports,
        size: bytes.len(),
        sha256: sha256_hex(bytes),
        needs,
    })
}

/// Magic and version/layer: the cheap way to tell random bytes and core modules apart
/// from components, with a reason that says which it is.
fn check_header(bytes: &[u8]) -> Result<(), CheckError> {
    const MAGIC: &[u8; 4] = b"\0asm";
    if bytes.len() < 4 {
        if !bytes.is_empty() && MAGIC.starts_with(bytes) {
            return Err(CheckError::Truncated(format!(
                "{} bytes, shorter than the wasm header",
                bytes.len()
            )));
        }
        return Err(CheckError::NotWasm);
    }
    if &bytes[..4] != MAGIC {
        return Err(CheckError::NotWasm);
    }
    if bytes.len() < 8 {
        return Err(CheckError::Truncated(format!(
            "{} bytes, shorter than the wasm header",
            bytes.len()
        )));
    }
    let layer = u16::from_le_bytes([bytes[6], bytes[7]]);
    match layer {
        0 => Err(CheckError::CoreModule),
        1 => Ok(()),
        other => Err(CheckError::Malformed(format!("unknown wasm layer {other}"))),
    }
}

fn validate(bytes: &[u8]) -> Result<(), CheckError> {
    let mut validator = wasmparser::Validator::new();
    validator.validate_all(bytes).map(|_| ()).map_err(|e| {
        let message = one_line(&e.to_string());
        if message.contains("unexpected end") {
            CheckError::Truncated(message)
        } else {
            CheckError::Malformed(message)
        }
    })
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

struct Reference {
    resolve: Resolve,
    world: WorldId,
}

static REFERENCE: LazyLock<Result<Reference, String>> = LazyLock::new(|| {
    let mut resolve = Resolve::default();
    resolve
        .push_str("strategy.wit", STRATEGY_WIT)
        .map_err(|e| format!("{e:#}"))?;
    resolve
        .push_str("v0.1.1/strategy.wit", STRATEGY_WIT_0_1_1)
        .map_err(|e| format!("{e:#}"))?;
    let pkg = resolve
        .push_str("v0.2.0/strategy.wit", STRATEGY_WIT_0_2_0)
        .map_err(|e| format!("{e:#}"))?;
    let world = resolve
        .select_world(&[pkg], Some("strategy"))
        .map_err(|e| format!("{e:#}"))?;
    Ok(Reference { resolve, world })
});

fn reference() -> Result<&'static Reference, CheckError> {
    REFERENCE
        .as_ref()
        .map_err(|e| CheckError::Malformed(format!("the host's own strategy.wit: {e}")))
}

/// Which family an imported interface belongs to.
enum ImportFamily {
    Stratbox(String),
    Wasi,
}

fn classify_interface(resolve: &Resolve, id: wit_parser::InterfaceId) -> Option<ImportFamily> {
    let iface = &resolve.interfaces[id];
    let pkg = &resolve.packages[iface.package?];
    let version = pkg.name.version.as_ref()?;
    let name = iface.name.clone()?;
    match (pkg.name.namespace.as_str(), pkg.name.name.as_str()) {
        ("stratbox", "strategy") if version.major == 0 && matches!(version.minor, 1 | 2) => {
            Some(ImportFamily::Stratbox(name))
        }
        ("wasi", _) if version.major == 0 && version.minor == 2 => Some(ImportFamily::Wasi),
        _ => None,
    }
}

fn compare_world(
    resolve: &Resolve,
    world: WorldId,
) -> Result<(String, Vec<String>, Vec<String>), CheckError> {
    let reference = reference()?;
    let ref_world = &reference.resolve.worlds[reference.world];
    let decoded = &resolve.worlds[world];

    // Exports: exactly the reference's functions, each with the reference's type.
    let mut exports = Vec::new();
    for (key, item) in &decoded.exports {
        let name = resolve.name_world_key(key);
        if name == PRE_INIT_EXPORT && matches!(item, WorldItem::Interface { .. }) {
            continue;
        }
        let WorldItem::Function(func) = item else {
            return Err(CheckError::WrongWorld(format!(
                "exports `{name}`, which the stratbox world does not have"
            )));
        };
        let expected = ref_world
            .exports
            .iter()
            .find_map(|(k, item)| match (k, item) {
                (WorldKey::Name(n), WorldItem::Function(f)) if *n == name => Some(f),
                _ => None,
            });
        let Some(expected) = expected else {
            return Err(CheckError::WrongWorld(format!(
                "exports `{name}`, which the stratbox world does not have"
            )));
        };
        compare_function(
            &format!("export `{name}`"),
            resolve,
            func,
            &reference.resolve,
            expected,
        )?;
        exports.push(name);
    }
    for name in REQUIRED_EXPORTS {
        if !exports.iter().any(|e| e == name) {
            return Err(CheckError::WrongWorld(format!(
                "does not export `{name}` (a strategy exports `init` and `on-event`)"
            )));
        }
    }
    let state_exports = STATE_EXPORTS
        .iter()
        .filter(|name| exports.iter().any(|e| e.as_str() == **name))
        .count();
    if state_exports == 1 {
        return Err(CheckError::WrongWorld(
            "exports only one of `save` and `restore`; a stateful strategy exports both".into(),
        ));
    }
    let stateful = state_exports == 2;
    // Reported in the world's order, whatever order the component lists them in.
    let rank = |name: &String| {
        REQUIRED_EXPORTS
            .iter()
            .chain(STATE_EXPORTS.iter())
            .chain(std::iter::once(&OUTCOME_EXPORT))
            .position(|n| n == name)
    };
    exports.sort_by_key(rank);

    // Imports: stratbox host/types with matching functions, and WASI 0.2.
    let mut imports = Vec::new();
    let mut stratbox_version = None;
    for (key, item) in &decoded.imports {
        let name = resolve.name_world_key(key);
        match item {
            WorldItem::Interface { id, .. } => match classify_interface(resolve, *id) {
                Some(ImportFamily::Stratbox(iface)) => {
                    let expected = reference
                        .resolve
                        .interfaces
                        .iter()
                        .find(|(_, i)| i.name.as_deref() == Some(iface.as_str()))
                        .map(|(_, i)| i);
                    let Some(expected) = expected else {
                        return Err(CheckError::WrongWorld(format!(
                            "imports `{name}`, which the stratbox host does not provide"
                        )));
                    };
                    for (fname, func) in &resolve.interfaces[*id].functions {
                        let Some(want) = expected.functions.get(fname) else {
                            return Err(CheckError::WrongWorld(format!(
                                "imports `{name}.{fname}`, which the stratbox host does not provide"
                            )));
                        };
                        compare_function(
                            &format!("import `{name}.{fname}`"),
                            resolve,
                            func,
                            &reference.resolve,
                            want,
                        )?;
                    }
                    // Only an interface with functions asks the host for something: a
                    // type-only one (`outcomes@0.2.0`, which the 0.2.0 SDK's bindings bring
                    // into every strategy built with it) says nothing about the world.
                    if !resolve.interfaces[*id].functions.is_empty()
                        && let Some(pkg) = resolve.interfaces[*id].package
                        && let Some(v) = &resolve.packages[pkg].name.version
                        && stratbox_version.as_ref().is_none_or(|s| v > s)
                    {
                        stratbox_version = Some(v.clone());
                    }
                }
                Some(ImportFamily::Wasi) => {}
                None => {
                    return Err(CheckError::WrongWorld(format!(
                        "imports `{name}`, which the stratbox host does not provide"
                    )));
                }
            },
            WorldItem::Function(_) => {
                return Err(CheckError::WrongWorld(format!(
                    "imports a bare function `{name}`, which the stratbox host does not provide"
                )));
            }
            // Type imports at world level come with the interfaces above.
            WorldItem::Type { .. } => continue,
        }
        imports.push(name);
    }

    // The 0.1.1 world adds exports only; its imports are still the 0.1.0 interfaces, so
    // the exports say which world a component targets. 0.2.0 adds an export and an import:
    // either says 0.2.0 (a 0.2.0 strategy that never reads its memory imports nothing new).
    let outcomes = exports.iter().any(|e| e == OUTCOME_EXPORT);
    let imports_0_2 = stratbox_version
        .as_ref()
        .is_some_and(|v| v.major == 0 && v.minor == 2);
    let version = (if outcomes || imports_0_2 {
        Some("0.2.0".to_string())
    } else if stateful {
        Some("0.1.1".to_string())
    } else {
        None
    })
    .or_else(|| stratbox_version.map(|v| v.to_string()))
    .unwrap_or_else(|| "0.1.0".to_string());
    Ok((
        format!("stratbox:strategy/strategy@{version}"),
        imports,
        exports,
    ))
}

fn compare_function(
    what: &str,
    resolve: &Resolve,
    func: &wit_parser::Function,
    ref_resolve: &Resolve,
    expected: &wit_parser::Function,
) -> Result<(), CheckError> {
    if func.params.len() != expected.params.len() {
        return Err(CheckError::WrongWorld(format!(
            "{what} takes {} parameters, the stratbox world says {}",
            func.params.len(),
            expected.params.len()
        )));
    }
    for (got, want) in func.params.iter().zip(&expected.params) {
        if got.name != want.name {
            return Err(CheckError::WrongWorld(format!(
                "{what} has parameter `{}` where the stratbox world has `{}`",
                got.name, want.name
            )));
        }
        if render(resolve, &got.ty) != render(ref_resolve, &want.ty) {
            return Err(CheckError::WrongWorld(format!(
                "{what}: parameter `{}` does not have the stratbox type",
                got.name
            )));
        }
    }
    let got = func.result.as_ref().map(|t| render(resolve, t));
    let want = expected.result.as_ref().map(|t| render(ref_resolve, t));
    if got != want {
        return Err(CheckError::WrongWorld(format!(
            "{what}: the result does not have the stratbox type"
        )));
    }
    Ok(())
}

/// A structural rendering of a type: equal strings mean the canonical ABI sees the same
/// type (names of records, variants and aliases do not matter to it, field and case names
/// do).
fn render(resolve: &Resolve, ty: &Type) -> String {
    match ty {
        Type::Bool => "bool".into(),
        Type::U8 => "u8".into(),
        Type::U16 => "u16".into(),
        Type::U32 => "u32".into(),
        Type::U64 => "u64".into(),
        Type::S8 => "s8".into(),
        Type::S16 => "s16".into(),
        Type::S32 => "s32".into(),
        Type::S64 => "s64".into(),
        Type::F32 => "f32".into(),
        Type::F64 => "f64".into(),
        Type::Char => "char".into(),
        Type::String => "string".into(),
        Type::ErrorContext => "error-context".into(),
        Type::Id(id) => render_kind(resolve, &resolve.types[*id].kind),
    }
}

fn render_kind(resolve: &Resolve, kind: &TypeDefKind) -> String {
    let opt = |t: &Option<Type>| t.as_ref().map(|t| render(resolve, t)).unwrap_or("_".into());
    match kind {
        TypeDefKind::Record(r) => format!(
            "record{{{}}}",
            r.fields
                .iter()
                .map(|f| format!("{}:{}", f.name, render(resolve, &f.ty)))
                .collect::<Vec<_>>()
                .join(",")
        ),
        TypeDefKind::Variant(v) => format!(
            "variant{{{}}}",
            v.cases
                .iter()
                .map(|c| format!("{}({})", c.name, opt(&c.ty)))
                .collect::<Vec<_>>()
                .join("|")
        ),
        TypeDefKind::Enum(e) => format!(
            "enum{{{}}}",
            e.cases
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join("|")
        ),
        TypeDefKind::Flags(f) => format!(
            "flags{{{}}}",
            f.flags
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join("|")
        ),
        TypeDefKind::Tuple(t) => format!(
            "tuple<{}>",
            t.types
                .iter()
                .map(|t| render(resolve, t))
                .collect::<Vec<_>>()
                .join(",")
        ),
        TypeDefKind::Option(t) => format!("option<{}>", render(resolve, t)),
        TypeDefKind::Result(r) => format!("result<{},{}>", opt(&r.ok), opt(&r.err)),
        TypeDefKind::List(t) => format!("list<{}>", render(resolve, t)),
        TypeDefKind::Type(t) => render(resolve, t),
        // Nothing in the stratbox world uses these; rendering them distinctly makes any
        // component that does fail the comparison.
        TypeDefKind::Map(k, v) => format!("map<{},{}>", render(resolve, k), render(resolve, v)),
        TypeDefKind::FixedLengthList(t, n) => format!("list<{},{n}>", render(resolve, t)),
        TypeDefKind::Resource | TypeDefKind::Handle(_) => "resource".into(),
        TypeDefKind::Future(t) => format!("future<{}>", opt(t)),
        TypeDefKind::Stream(t) => format!("stream<{}>", opt(t)),
        TypeDefKind::Unknown => "unknown".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_world_parses() {
        let r = reference().expect("strategy.wit parses");
        let world = &r.resolve.worlds[r.world];
        // init, on-event (from 0.1.0), save, restore (0.1.1), on-outcome (0.2.0).
        assert_eq!(world.exports.len(), 5);
    }

    #[test]
    fn header_refusals() {
        assert_eq!(check_component(b"", 100), Err(CheckError::NotWasm));
        assert_eq!(
            check_component(b"hello world", 100),
            Err(CheckError::NotWasm)
        );
        assert_eq!(
            check_component(b"\0asm\x01\0\0\0", 100),
            Err(CheckError::CoreModule)
        );
        assert!(matches!(
            check_component(b"\0asm\x0d\0", 100),
            Err(CheckError::Truncated(_))
        ));
        assert!(matches!(
            check_component(&[0u8; 200], 100),
            Err(CheckError::Oversized {
                size: 200,
                limit: 100
            })
        ));
    }
}
