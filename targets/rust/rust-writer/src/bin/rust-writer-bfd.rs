//! The rust-writer-bfd binary of this target, linked with GNU ld (see build.rs).

fn main() {
    rust_writer::main(env!("CARGO_BIN_NAME"))
}
