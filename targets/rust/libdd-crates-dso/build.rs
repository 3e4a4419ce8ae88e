//! Makes `otel_thread_ctx_v1` GLOBAL in the cdylib (writers.md: rustc's version script hides it;
//! an extra version script fixes that with LLD, GNU ld rejects the combination).

fn main() {
    let out_dir = std::env::var("OUT_DIR").expect("OUT_DIR");
    let script = std::path::Path::new(&out_dir).join("context-symbols.map");
    std::fs::write(&script, "{ global: otel_thread_ctx_v1; };\n")
        .expect("writing the version script");
    println!(
        "cargo:rustc-cdylib-link-arg=-Wl,--version-script={}",
        script.display()
    );
    println!("cargo:rerun-if-changed=build.rs");
}
