// Shared by the build scripts of the Rust targets (`include!`d, so each stays one file).

/// Makes the link step that `link_arg` addresses (`cargo:rustc-link-arg-bin=NAME` or
/// `cargo:rustc-cdylib-link-arg`) use LLD, and says whether it will. rustup's rustc links x86_64
/// with its own LLD already; elsewhere (the aarch64 cross build with the GNU cross gcc) LLD is
/// selected through a `-B` directory holding `ld.lld`, and there may be none.
fn link_with_lld(link_arg: &str) -> bool {
    println!("cargo:rerun-if-changed=../lld.rs");
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("x86_64") {
        return true;
    }
    let lld_dir = [
        "/usr/lib/llvm-14/bin",
        "/usr/lib/llvm-16/bin",
        "/usr/lib/llvm-19/bin",
    ]
    .into_iter()
    .find(|dir| std::path::Path::new(dir).join("ld.lld").exists());
    match lld_dir {
        Some(dir) => {
            println!("{link_arg}=-fuse-ld=lld");
            println!("{link_arg}=-B{dir}");
            true
        }
        None => false,
    }
}
