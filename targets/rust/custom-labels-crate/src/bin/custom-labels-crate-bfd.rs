//! The custom-labels-crate-bfd binary of this target, linked with GNU ld (see build.rs).

fn main() {
    custom_labels_crate_target::main(env!("CARGO_BIN_NAME"))
}
