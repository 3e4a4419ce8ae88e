//! Makes `otel_thread_ctx_v1` GLOBAL in the cdylib (see `../dso_build.rs`).

include!("../dso_build.rs");

fn main() {
    export_context_symbols(&["otel_thread_ctx_v1"]);
}
