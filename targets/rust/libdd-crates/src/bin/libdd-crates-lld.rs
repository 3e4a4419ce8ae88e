//! The libdd-crates-lld binary of this target, linked with rustup's default LLD (see build.rs).

fn main() {
    libdd_crates_target::main(env!("CARGO_BIN_NAME"))
}
