//! Embeds the contract bytecode at build time so a binary never needs `node_modules` to run
//! the embedded chain. Artifacts come from the npm packages pinned in the workspace's
//! package-lock.json; if `node_modules` is missing we run `npm ci` once at the workspace root.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// (name in OUT_DIR, path under node_modules or under this crate, is it ours)
const ARTIFACTS: &[(&str, &str, Source)] = &[
    (
        "UniswapV3Factory",
        "@uniswap/v3-core/artifacts/contracts/UniswapV3Factory.sol/UniswapV3Factory.json",
        Source::NodeModules,
    ),
    (
        "UniswapV3Pool",
        "@uniswap/v3-core/artifacts/contracts/UniswapV3Pool.sol/UniswapV3Pool.json",
        Source::NodeModules,
    ),
    (
        "ERC20PresetMinterPauser",
        "@openzeppelin/contracts/build/contracts/ERC20PresetMinterPauser.json",
        Source::NodeModules,
    ),
    (
        "StratboxExecutor",
        "artifacts/StratboxExecutor.json",
        Source::Crate,
    ),
    (
        "MockV3Aggregator",
        "artifacts/MockV3Aggregator.json",
        Source::Crate,
    ),
];

#[derive(Clone, Copy)]
enum Source {
    NodeModules,
    Crate,
}

fn main() {
    let manifest_dir =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    println!("cargo:rerun-if-env-changed=STRATBOX_NODE_MODULES");
    println!("cargo:rerun-if-changed=build.rs");

    let node_modules = locate_node_modules(&manifest_dir);
    for (name, rel, source) in ARTIFACTS {
        let path = match source {
            Source::NodeModules => node_modules.join(rel),
            Source::Crate => manifest_dir.join(rel),
        };
        println!("cargo:rerun-if-changed={}", path.display());
        let text = fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read artifact {}: {e}", path.display()));
        let json: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("artifact {} is not JSON: {e}", path.display()));
        for (field, suffix) in [("bytecode", "initcode"), ("deployedBytecode", "runtime")] {
            let hex = json[field]
                .as_str()
                .unwrap_or_else(|| panic!("artifact {} has no `{field}`", path.display()));
            let bytes = decode_hex(hex)
                .unwrap_or_else(|e| panic!("artifact {} `{field}`: {e}", path.display()));
            assert!(
                !bytes.is_empty(),
                "artifact {} `{field}` is empty",
                path.display()
            );
            fs::write(out_dir.join(format!("{name}.{suffix}.bin")), bytes).expect("write OUT_DIR");
        }
        let abi = serde_json::to_string(&json["abi"]).expect("re-serialise abi");
        fs::write(out_dir.join(format!("{name}.abi.json")), abi).expect("write OUT_DIR");
    }
}

/// `STRATBOX_NODE_MODULES`, else the nearest `node_modules` above this crate; installs it with
/// `npm ci` at the workspace root when it is missing.
fn locate_node_modules(manifest_dir: &Path) -> PathBuf {
    if let Ok(dir) = env::var("STRATBOX_NODE_MODULES") {
        return PathBuf::from(dir);
    }
    for dir in manifest_dir.ancestors() {
        let candidate = dir.join("node_modules");
        if candidate.join("@uniswap/v3-core").is_dir() {
            return candidate;
        }
    }
    let root = manifest_dir
        .ancestors()
        .find(|d| d.join("package-lock.json").is_file() && d.join("package.json").is_file())
        .unwrap_or_else(|| {
            panic!(
                "no package.json + package-lock.json above {}",
                manifest_dir.display()
            )
        });
    println!(
        "cargo:warning=node_modules missing; running `npm ci` in {}",
        root.display()
    );
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(root)
        .status()
        .unwrap_or_else(|e| {
            panic!("cannot run npm (needed once to fetch contract artifacts): {e}")
        });
    assert!(status.success(), "`npm ci` failed in {}", root.display());
    root.join("node_modules")
}

fn decode_hex(s: &str) -> Result<Vec<u8>, String> {
    let s = s.strip_prefix("0x").unwrap_or(s);
    if !s.len().is_multiple_of(2) {
        return Err("odd number of hex digits".into());
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|e| format!("bad hex at {i}: {e}")))
        .collect()
}
