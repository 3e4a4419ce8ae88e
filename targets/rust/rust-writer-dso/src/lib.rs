//! The own Rust writer (crate `rust-writer`) packaged as `libcustomlabels_rustwriter.so`: the
//! TLS slots live in this DSO, which the host executable `rust-writer-dso-lld` links at start-up
//! (DT_NEEDED), so a reader must resolve them through the DSO's TLSDESC relocations.

/// Runs the whole target inside the DSO. `variant`/`variant_len` name the writer variant
/// (UTF-8). Never returns normally: the target exits the process at stdin EOF; a panic aborts.
///
/// # Safety
/// `variant` must point to `variant_len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn rust_writer_dso_main(variant: *const u8, variant_len: usize) {
    // SAFETY: the caller guarantees `variant_len` readable bytes at `variant`.
    let bytes = unsafe { std::slice::from_raw_parts(variant, variant_len) };
    let variant = std::str::from_utf8(bytes).unwrap_or("rust-writer-dso");
    if std::panic::catch_unwind(|| rust_writer::main(variant)).is_err() {
        std::process::abort();
    }
}
