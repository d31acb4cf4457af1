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
