//! Exports `otel_thread_ctx_v1` to `.dynsym` (writers.md: needed in an executable) and links the
//! `-bfd` binary with GNU ld instead of rustup's default LLD.

include!("../lld.rs");

fn main() {
    println!("cargo:rustc-link-arg-bins=-Wl,--export-dynamic-symbol=otel_thread_ctx_v1");
    // rustc passes `-fuse-ld=lld` first; a later `-fuse-ld=bfd` wins with gcc as the driver.
    println!("cargo:rustc-link-arg-bin=libdd-crates-bfd=-fuse-ld=bfd");
    if !link_with_lld("cargo:rustc-link-arg-bin=libdd-crates-lld") {
        println!(
            "cargo:warning=no ld.lld found: libdd-crates-lld is linked with the default linker"
        );
    }
    println!("cargo:rerun-if-changed=build.rs");
}
