//! `sqlx::migrate!` embeds engine/migrations at compile time but cannot tell cargo that a
//! NEW file there (say `0002_registry.sql`) should rebuild the crate; this does.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
