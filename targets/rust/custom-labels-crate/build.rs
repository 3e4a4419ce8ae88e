//! Exports the custom-labels symbols to `.dynsym` (the crate's own instructions) and links the
//! `-bfd` binary with GNU ld instead of rustup's default LLD (see `../exe_build.rs`).

include!("../exe_build.rs");

fn main() {
    custom_labels::build::emit_build_instructions();
    link_bfd_and_lld("custom-labels-crate");
}
