//! Host executable of the libdd DSO variant: everything runs in `liblibdd_crates_dso.so`.

extern "C" {
    fn libdd_crates_dso_main(variant: *const u8, variant_len: usize);
}

fn main() {
    let variant = env!("CARGO_BIN_NAME");
    // SAFETY: the DSO function takes a pointer/length pair to UTF-8 bytes that outlive the call.
    unsafe { libdd_crates_dso_main(variant.as_ptr(), variant.len()) }
}
