//! The custom-labels-crate-lld binary of this target, linked with rustup's default LLD (see build.rs).

fn main() {
    custom_labels_crate_target::main(env!("CARGO_BIN_NAME"))
}
