//! Exports the custom-labels symbols to `.dynsym` (the crate's own instructions) and links the
//! `-bfd` binary with GNU ld instead of rustup's default LLD.

include!("../lld.rs");

fn main() {
    custom_labels::build::emit_build_instructions();
    // rustc passes `-fuse-ld=lld` first; a later `-fuse-ld=bfd` wins with gcc as the driver.
    println!("cargo:rustc-link-arg-bin=custom-labels-crate-bfd=-fuse-ld=bfd");
    if !link_with_lld("cargo:rustc-link-arg-bin=custom-labels-crate-lld") {
        println!("cargo:warning=no ld.lld found: custom-labels-crate-lld is linked with the default linker");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
