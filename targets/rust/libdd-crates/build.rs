//! Exports `otel_thread_ctx_v1` to `.dynsym` (writers.md: needed in an executable) and links the
//! `-bfd` binary with GNU ld instead of rustup's default LLD (see `../exe_build.rs`).

include!("../exe_build.rs");

fn main() {
    println!("cargo:rustc-link-arg-bins=-Wl,--export-dynamic-symbol=otel_thread_ctx_v1");
    link_bfd_and_lld("libdd-crates");
}
