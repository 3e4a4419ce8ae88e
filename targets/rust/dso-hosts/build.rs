//! Links each host against its writer DSO (built first, as a dependency) with DT_NEEDED and an
//! `$ORIGIN` run path, so the DSO is part of the initial set of modules.

fn main() {
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    // OUT_DIR = <target>/[<triple>/]<profile>/build/<package>-<hash>/out
    let profile_dir = out_dir
        .ancestors()
        .nth(3)
        .expect("profile directory above OUT_DIR");
    println!(
        "cargo:rustc-link-arg-bins=-L{}",
        profile_dir.join("deps").display()
    );
    println!("cargo:rustc-link-arg-bins=-Wl,--no-as-needed");
    println!("cargo:rustc-link-arg-bins=-Wl,-rpath,$ORIGIN:$ORIGIN/deps");
    for (bin, library) in [
        ("rust-writer-dso-lld", "libcustomlabels_rustwriter.so"),
        ("libdd-crates-dso-lld", "liblibdd_crates_dso.so"),
    ] {
        println!("cargo:rustc-link-arg-bin={bin}=-l:{library}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
