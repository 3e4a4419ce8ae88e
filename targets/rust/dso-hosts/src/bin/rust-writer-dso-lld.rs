//! Host executable of the DSO variant: everything runs in `libcustomlabels_rustwriter.so`.

extern "C" {
    fn rust_writer_dso_main(variant: *const u8, variant_len: usize);
}

fn main() {
    let variant = env!("CARGO_BIN_NAME");
    // SAFETY: the DSO function takes a pointer/length pair to UTF-8 bytes that outlive the call.
    unsafe { rust_writer_dso_main(variant.as_ptr(), variant.len()) }
}
