//! Makes the context symbols GLOBAL in the cdylib: rustc's own version script hides everything
//! but `#[no_mangle]` functions, so an extra version script exports the TLS slots and the ABI word
//! (writers.md: accepted by LLD, rejected by GNU ld together with rustc's script).

fn main() {
    let out_dir = std::env::var("OUT_DIR").expect("OUT_DIR");
    let script = std::path::Path::new(&out_dir).join("context-symbols.map");
    std::fs::write(
        &script,
        "{ global: custom_labels_current_set; custom_labels_abi_version; otel_thread_ctx_v1; };\n",
    )
    .expect("writing the version script");
    println!(
        "cargo:rustc-cdylib-link-arg=-Wl,--version-script={}",
        script.display()
    );
    println!("cargo:rerun-if-changed=build.rs");
}
