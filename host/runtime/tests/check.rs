//! The admission check refuses everything that is not a component of the stratbox world,
//! each with a one-line reason, and accepts the catalog's strategies.

use stratbox_host::check::{CheckError, DEFAULT_MAX_COMPONENT_BYTES, check_component};

fn catalog(name: &str) -> Vec<u8> {
    stratbox_strategies::bytes(name).expect("catalog component")
}

fn refusal(bytes: &[u8], max: usize) -> CheckError {
    let err = check_component(bytes, max).expect_err("must be refused");
    let line = err.to_string();
    assert!(
        !line.is_empty() && !line.contains('\n'),
        "reason must be one line: {line:?}"
    );
    err
}

#[test]
fn strategies_are_accepted_with_their_world_imports_and_digest() {
    for name in ["clamm-maker", "momentum", "tally", "hostile"] {
        let bytes = catalog(name);
        let report = check_component(&bytes, DEFAULT_MAX_COMPONENT_BYTES).expect(name);
        // momentum is told its outcomes and keeps a memory (world 0.2.0); tally hands its
        // state over in a hot swap (world 0.1.1); the others are of the original world,
        // which the host still accepts.
        let (world, exports): (&str, &[&str]) = match name {
            "momentum" => (
                "stratbox:strategy/strategy@0.2.0",
                &["init", "on-event", "save", "restore", "on-outcome"],
            ),
            "tally" => (
                "stratbox:strategy/strategy@0.1.1",
                &["init", "on-event", "save", "restore"],
            ),
            _ => ("stratbox:strategy/strategy@0.1.0", &["init", "on-event"]),
        };
        if name == "momentum" {
            assert!(
                report
                    .imports
                    .iter()
                    .any(|i| i == "stratbox:strategy/memory@0.2.0"),
                "{report:?}"
            );
        }
        assert_eq!(report.world, world, "{report:?}");
        assert_eq!(report.exports, exports);
        assert!(
            report.imports.iter().any(|i| i.starts_with("wasi:")),
            "{report:?}"
        );
        assert!(
            report
                .imports
                .iter()
                .all(|i| i.starts_with("wasi:") || i.starts_with("stratbox:strategy/"))
        );
        assert_eq!(report.size, bytes.len());
        assert_eq!(report.sha256, stratbox_host::check::sha256_hex(&bytes));
        assert_eq!(report.sha256.len(), 64);
    }
}

#[test]
fn random_bytes_are_refused() {
    // Deterministic noise that does not start with the wasm magic.
    let mut x = 0x1234_5678_9abc_def0u64;
    let bytes: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    assert_eq!(
        refusal(&bytes, DEFAULT_MAX_COMPONENT_BYTES),
        CheckError::NotWasm
    );
}

#[test]
fn a_truncated_component_is_refused() {
    let bytes = catalog("clamm-maker");
    for cut in [9, bytes.len() / 2, bytes.len() - 1] {
        let err = refusal(&bytes[..cut], DEFAULT_MAX_COMPONENT_BYTES);
        assert!(
            matches!(err, CheckError::Truncated(_)),
            "cut at {cut}: {err}"
        );
    }
}

#[test]
fn a_core_module_is_refused() {
    // The smallest valid core module: magic and version 1.
    let err = refusal(b"\0asm\x01\0\0\0", DEFAULT_MAX_COMPONENT_BYTES);
    assert_eq!(err, CheckError::CoreModule);
    assert!(err.to_string().contains("core wasm module"));
}

#[test]
fn a_component_of_another_world_is_refused() {
    let err = refusal(&catalog("other-world"), DEFAULT_MAX_COMPONENT_BYTES);
    assert!(matches!(err, CheckError::WrongWorld(_)), "{err}");
    assert!(
        err.to_string().contains("run"),
        "the reason names the foreign export: {err}"
    );
}

#[test]
fn an_oversized_file_is_refused_before_parsing() {
    let bytes = catalog("clamm-maker");
    let err = refusal(&bytes, bytes.len() - 1);
    assert_eq!(
        err,
        CheckError::Oversized {
            size: bytes.len(),
            limit: bytes.len() - 1
        }
    );
}

#[test]
fn the_runtime_refuses_what_check_refuses() {
    let runtime = stratbox_host::HostRuntime::new(stratbox_host::HostConfig {
        max_instances: 4,
        ..Default::default()
    })
    .expect("runtime");
    let err = runtime
        .load(&catalog("other-world"))
        .err()
        .expect("refused");
    assert!(
        matches!(
            err,
            stratbox_host::LoadError::Check(CheckError::WrongWorld(_))
        ),
        "{err}"
    );
    let err = runtime.load(b"\0asm\x01\0\0\0").err().expect("refused");
    assert!(
        matches!(err, stratbox_host::LoadError::Check(CheckError::CoreModule)),
        "{err}"
    );
}
