//! The libdd crates target (crate `libdd-crates-target`) packaged as `liblibdd_crates_dso.so`:
//! `otel_thread_ctx_v1` lives in this DSO, which the host `libdd-crates-dso-lld` links at start-up.

/// Runs the whole target inside the DSO. `variant`/`variant_len` name the writer variant
/// (UTF-8). Never returns normally: the target exits the process at stdin EOF; a panic aborts.
///
/// # Safety
/// `variant` must point to `variant_len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn libdd_crates_dso_main(variant: *const u8, variant_len: usize) {
    // SAFETY: the caller guarantees `variant_len` readable bytes at `variant`.
    let bytes = unsafe { std::slice::from_raw_parts(variant, variant_len) };
    let variant = std::str::from_utf8(bytes).unwrap_or("libdd-crates-dso");
    if std::panic::catch_unwind(|| libdd_crates_target::main(variant)).is_err() {
        std::process::abort();
    }
}
