//! Bindings generated from `wit/strategy.wit`.
//!
//! Generated here, once, so that a strategy crate depends on `stratbox-sdk` alone: the
//! runtime path points back at our re-export of `wit_bindgen`, and the export macro is
//! public so [`crate::export_strategy!`] can expand it in the author's crate.

wit_bindgen::generate!({
    path: "../wit",
    world: "strategy",
    // Proposals and events are compared in tests (determinism, replay), so they need `Eq`.
    additional_derives: [PartialEq, Eq],
    pub_export_macro: true,
    export_macro_name: "__stratbox_export_world",
    default_bindings_module: "stratbox_sdk::bindings",
    runtime_path: "stratbox_sdk::__private::wit_bindgen::rt",
});

/// Bindings of the world `stratbox:strategy/strategy@0.1.1`: the 0.1.0 world plus `save`
/// and `restore`, for strategies exported with [`crate::export_stateful_strategy!`].
///
/// Its interfaces are the 0.1.0 ones, so they are mapped onto the modules above: a
/// stateful strategy sees the same Rust types and calls the same host imports as any other.
///
/// The world is reached through an alias, `stratbox:sdk/stateful-strategy`, only because
/// the generated export macros are named after the world and `strategy` is taken by the
/// 0.1.0 bindings above; the alias adds nothing to the world.
pub mod stateful {
    wit_bindgen::generate!({
        path: ["../wit", "../wit/v0.1.1"],
        inline: "
            package stratbox:sdk;
            world stateful-strategy {
                include stratbox:strategy/strategy@0.1.1;
            }
        ",
        world: "stratbox:sdk/stateful-strategy",
        with: {
            "stratbox:strategy/types@0.1.0": stratbox_sdk::bindings::stratbox::strategy::types,
            "stratbox:strategy/host@0.1.0": stratbox_sdk::bindings::stratbox::strategy::host,
        },
        pub_export_macro: true,
        export_macro_name: "__stratbox_export_stateful_world",
        default_bindings_module: "stratbox_sdk::bindings::stateful",
        runtime_path: "stratbox_sdk::__private::wit_bindgen::rt",
    });
}

/// Bindings of the world `stratbox:strategy/strategy@0.2.0`: the 0.1.1 world plus the
/// `memory` import and the `on-outcome` export, for strategies exported with
/// [`crate::export_outcome_strategy!`]. The 0.1.0 interfaces are mapped onto the modules
/// above, as in [`stateful`]; the alias world only names the export macro.
pub mod v0_2 {
    wit_bindgen::generate!({
        path: ["../wit", "../wit/v0.1.1", "../wit/v0.2.0"],
        inline: "
            package stratbox:sdk-outcomes;
            world outcome-strategy {
                include stratbox:strategy/strategy@0.2.0;
            }
        ",
        world: "stratbox:sdk-outcomes/outcome-strategy",
        with: {
            "stratbox:strategy/types@0.1.0": stratbox_sdk::bindings::stratbox::strategy::types,
            "stratbox:strategy/host@0.1.0": stratbox_sdk::bindings::stratbox::strategy::host,
            "stratbox:strategy/memory@0.2.0": generate,
            "stratbox:strategy/outcomes@0.2.0": generate,
        },
        additional_derives: [PartialEq, Eq],
        pub_export_macro: true,
        export_macro_name: "__stratbox_export_outcome_world",
        default_bindings_module: "stratbox_sdk::bindings::v0_2",
        runtime_path: "stratbox_sdk::__private::wit_bindgen::rt",
    });
}
