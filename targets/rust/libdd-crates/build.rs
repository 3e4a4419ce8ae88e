//! Exports `otel_thread_ctx_v1` to `.dynsym` (writers.md: needed in an executable) and links the
//! `-bfd` binary with GNU ld instead of rustup's default LLD.

fn main() {
    println!("cargo:rustc-link-arg-bins=-Wl,--export-dynamic-symbol=otel_thread_ctx_v1");
    // rustc passes `-fuse-ld=lld` first; a later `-fuse-ld=bfd` wins with gcc as the driver.
    println!("cargo:rustc-link-arg-bin=libdd-crates-bfd=-fuse-ld=bfd");
    // rustup's rustc links x86_64 with its own LLD already; elsewhere (the aarch64 cross build with
    // the GNU cross gcc) the `-lld` binary selects LLD through a `-B` directory holding `ld.lld`.
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() != Ok("x86_64") {
        let lld_dir = [
            "/usr/lib/llvm-14/bin",
            "/usr/lib/llvm-16/bin",
            "/usr/lib/llvm-19/bin",
        ]
        .into_iter()
        .find(|dir| std::path::Path::new(dir).join("ld.lld").exists());
        match lld_dir {
            Some(dir) => {
                println!("cargo:rustc-link-arg-bin=libdd-crates-lld=-fuse-ld=lld");
                println!("cargo:rustc-link-arg-bin=libdd-crates-lld=-B{dir}");
            }
            None => println!(
                "cargo:warning=no ld.lld found: libdd-crates-lld is linked with the default linker"
            ),
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}
