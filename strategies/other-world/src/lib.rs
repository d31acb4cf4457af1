//! A well-formed component of a different world (`other:thing/thing`), exporting `run`.
//!
//! It exists so the host's admission check is tested against something that *is* a
//! component and *does* validate, just not against the `stratbox:strategy` world: the
//! refusal must come from the world check, not from a parse error.

wit_bindgen::generate!({
    inline: "
        package other:thing@1.0.0;

        world thing {
            export run: func() -> u32;
        }
    ",
});

struct Thing;

impl Guest for Thing {
    fn run() -> u32 {
        42
    }
}

export!(Thing);
