//! Exports the three context symbols of the own writer to `.dynsym` (they are defined in
//! `global_asm!`, src/tls.rs) and links the `-bfd` binary with GNU ld instead of rustup's LLD (see
//! `../exe_build.rs`).

include!("../exe_build.rs");

fn main() {
    for symbol in [
        "custom_labels_current_set",
        "custom_labels_abi_version",
        "otel_thread_ctx_v1",
    ] {
        println!("cargo:rustc-link-arg-bins=-Wl,--export-dynamic-symbol={symbol}");
    }
    link_bfd_and_lld("rust-writer");
}
