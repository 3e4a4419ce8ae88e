//! Makes the context symbols (TLS slots and the ABI word) GLOBAL in the cdylib (see
//! `../dso_build.rs`).

include!("../dso_build.rs");

fn main() {
    export_context_symbols(&[
        "custom_labels_current_set",
        "custom_labels_abi_version",
        "otel_thread_ctx_v1",
    ]);
}
