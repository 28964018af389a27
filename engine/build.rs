//! Rebuilds the engine when a migration is added or changed.
//!
//! `sqlx::migrate!` embeds `../migrations/*` at compile time, and on stable Rust Cargo reruns
//! the macro only when a Rust source of the crate changes: a new migration alone left the
//! binary migrating to the old list. This is the build script sqlx recommends.
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
