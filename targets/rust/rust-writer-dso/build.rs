//! Makes the context symbols GLOBAL in the cdylib: rustc's own version script hides everything
//! but `#[no_mangle]` functions, so an extra version script exports the TLS slots and the ABI word
//! (writers.md: accepted by LLD, rejected by GNU ld together with rustc's script).

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let out_dir = std::env::var("OUT_DIR").expect("OUT_DIR");
    let script = std::path::Path::new(&out_dir).join("context-symbols.map");
    std::fs::write(
        &script,
        "{ global: custom_labels_current_set; custom_labels_abi_version; otel_thread_ctx_v1; };\n",
    )
    .expect("writing the version script");
    // rustup's rustc links x86_64 with its own LLD. Elsewhere (the aarch64 cross build with the
    // GNU cross gcc) select LLD explicitly through a `-B` directory holding `ld.lld`.
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
                println!("cargo:rustc-cdylib-link-arg=-fuse-ld=lld");
                println!("cargo:rustc-cdylib-link-arg=-B{dir}");
            }
            None => {
                // GNU ld rejects a second version script: build the DSO without exported TLS.
                println!("cargo:warning=no ld.lld found: the DSO's context symbols stay local");
                return;
            }
        }
    }
    let script_arg = format!("-Wl,--version-script={}", script.display());
    println!("cargo:rustc-cdylib-link-arg={script_arg}");
}
