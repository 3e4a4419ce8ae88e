//! The rust-writer-lld binary of this target, linked with rustup's default LLD (see build.rs).

fn main() {
    rust_writer::main(env!("CARGO_BIN_NAME"))
}
