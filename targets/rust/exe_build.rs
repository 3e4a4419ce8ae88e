// Shared by the `build.rs` of the Rust executable targets (`include!`d, so each stays one file).

include!("lld.rs");

/// Links the `<package>-bfd` binary with GNU ld and the `<package>-lld` binary with LLD: the two
/// linkings of each executable variant.
fn link_bfd_and_lld(package: &str) {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=../exe_build.rs");
    // rustc passes `-fuse-ld=lld` first; a later `-fuse-ld=bfd` wins with gcc as the driver.
    println!("cargo:rustc-link-arg-bin={package}-bfd=-fuse-ld=bfd");
    if !link_with_lld(&format!("cargo:rustc-link-arg-bin={package}-lld")) {
        println!("cargo:warning=no ld.lld found: {package}-lld is linked with the default linker");
    }
}
