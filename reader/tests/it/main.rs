//! Integration tests of the reader library: byte-fixture decoder tests and the modules below.
mod certify;
mod core;
mod decode_process_ctx;
mod decode_thread_ctx;
mod decode_v1;
mod ebpf;
mod fixtures;
mod fuzz;
mod layers;
mod ptrace;
mod writer;
