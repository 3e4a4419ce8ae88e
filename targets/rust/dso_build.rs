// Shared by the `build.rs` of the Rust DSO targets (`include!`d, so each stays one file).

include!("lld.rs");

/// Exports `symbols` from the cdylib being built: rustc's own version script hides everything but
/// `#[no_mangle]` functions, so an extra version script makes the TLS slots GLOBAL (writers.md:
/// accepted by LLD, rejected by GNU ld together with rustc's script).
fn export_context_symbols(symbols: &[&str]) {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=../dso_build.rs");
    let out_dir = std::env::var("OUT_DIR").expect("OUT_DIR");
    let script = std::path::Path::new(&out_dir).join("context-symbols.map");
    let globals: String = symbols.iter().map(|s| format!(" {s};")).collect();
    std::fs::write(&script, format!("{{ global:{globals} }};\n"))
        .expect("writing the version script");
    if !link_with_lld("cargo:rustc-cdylib-link-arg") {
        // GNU ld rejects a second version script: build the DSO without exported TLS.
        println!("cargo:warning=no ld.lld found: the DSO's context symbols stay local");
        return;
    }
    let script_arg = format!("-Wl,--version-script={}", script.display());
    println!("cargo:rustc-cdylib-link-arg={script_arg}");
}
