//! Exports the three context symbols of the own writer to `.dynsym` (they are defined in
//! `global_asm!`, src/tls.rs) and links the `-bfd` binary with GNU ld instead of rustup's LLD.

include!("../lld.rs");

fn main() {
    for symbol in [
        "custom_labels_current_set",
        "custom_labels_abi_version",
        "otel_thread_ctx_v1",
    ] {
        println!("cargo:rustc-link-arg-bins=-Wl,--export-dynamic-symbol={symbol}");
    }
    // rustc passes `-fuse-ld=lld` first; a later `-fuse-ld=bfd` wins with gcc as the driver.
    println!("cargo:rustc-link-arg-bin=rust-writer-bfd=-fuse-ld=bfd");
    if !link_with_lld("cargo:rustc-link-arg-bin=rust-writer-lld") {
        println!(
            "cargo:warning=no ld.lld found: rust-writer-lld is linked with the default linker"
        );
    }
    println!("cargo:rerun-if-changed=build.rs");
}
