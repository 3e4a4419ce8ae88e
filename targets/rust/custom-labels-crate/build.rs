//! Exports the custom-labels symbols to `.dynsym` (the crate's own instructions) and links the
//! `-bfd` binary with GNU ld instead of rustup's default LLD.

fn main() {
    custom_labels::build::emit_build_instructions();
    // rustc passes `-fuse-ld=lld` first; a later `-fuse-ld=bfd` wins with gcc as the driver.
    println!("cargo:rustc-link-arg-bin=custom-labels-crate-bfd=-fuse-ld=bfd");
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
                println!("cargo:rustc-link-arg-bin=custom-labels-crate-lld=-fuse-ld=lld");
                println!("cargo:rustc-link-arg-bin=custom-labels-crate-lld=-B{dir}");
            }
            None => println!("cargo:warning=no ld.lld found: custom-labels-crate-lld is linked with the default linker"),
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}
