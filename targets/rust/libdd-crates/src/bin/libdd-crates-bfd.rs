//! The libdd-crates-bfd binary of this target, linked with GNU ld (see build.rs).

fn main() {
    libdd_crates_target::main(env!("CARGO_BIN_NAME"))
}
