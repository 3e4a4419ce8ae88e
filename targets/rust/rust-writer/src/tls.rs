//! The thread-local context slots of the own writer, defined without `#[thread_local]` (nightly
//! only) as `.tbss` symbols in `global_asm!`, like libdatadog does: `custom_labels_current_set`
//! (custom-labels v1, 8 bytes), `otel_thread_ctx_v1` (OTEP 4947, 8 bytes) and the global
//! `custom_labels_abi_version` word (= 1). Each slot's address is computed with the canonical
//! TLSDESC code sequence; the linker relaxes it (LLD to local-exec, GNU ld to initial-exec) since
//! the symbols live in the executable. build.rs exports all three to `.dynsym`.
//!
//! Invariant for everything `unsafe` here: the asm defines each slot as 8 zero-initialised,
//! 8-byte-aligned bytes of TLS, so the address returned for the calling thread is valid, aligned
//! and exclusively that thread's for the thread's lifetime; only the owning thread stores to it.

use std::sync::atomic::{compiler_fence, AtomicPtr, Ordering};

core::arch::global_asm!(
    ".section .tbss.rust_writer_context,\"awT\",@nobits",
    ".globl custom_labels_current_set",
    ".type custom_labels_current_set, @tls_object",
    ".size custom_labels_current_set, 8",
    ".balign 8",
    "custom_labels_current_set:",
    ".zero 8",
    ".globl otel_thread_ctx_v1",
    ".type otel_thread_ctx_v1, @tls_object",
    ".size otel_thread_ctx_v1, 8",
    ".balign 8",
    "otel_thread_ctx_v1:",
    ".zero 8",
    ".section .data.custom_labels_abi_version,\"awR\",@progbits",
    ".globl custom_labels_abi_version",
    ".type custom_labels_abi_version, @object",
    ".size custom_labels_abi_version, 4",
    ".balign 4",
    "custom_labels_abi_version:",
    ".long 1",
    ".text",
);

extern "C" {
    /// The v1 ABI version word defined above.
    static custom_labels_abi_version: u32;
}

/// The value of the exported `custom_labels_abi_version` word (1).
pub fn abi_version() -> u32 {
    // SAFETY: the asm above defines the symbol as an initialised, aligned u32 that nothing writes.
    unsafe { std::ptr::read_volatile(&raw const custom_labels_abi_version) }
}

/// Generates a function returning the calling thread's slot for a TLS symbol.
macro_rules! tls_slot_fn {
    ($name:ident, $symbol:literal) => {
        #[cfg(target_arch = "x86_64")]
        fn $name() -> usize {
            let address: usize;
            // SAFETY: the TLSDESC call preserves every register but rax and the flags; without
            // `nostack` the compiler keeps the stack aligned for the call and off the red zone.
            unsafe {
                core::arch::asm!(
                    concat!("leaq ", $symbol, "@tlsdesc(%rip), %rax"),
                    concat!("call *", $symbol, "@TLSCALL(%rax)"),
                    "addq %fs:0, %rax",
                    out("rax") address,
                    options(att_syntax),
                );
            }
            address
        }

        #[cfg(target_arch = "aarch64")]
        fn $name() -> usize {
            let address: usize;
            // SAFETY: the TLSDESC resolver call clobbers x0, x1 and the link register only.
            unsafe {
                core::arch::asm!(
                    concat!("adrp x0, :tlsdesc:", $symbol),
                    concat!("ldr x1, [x0, :tlsdesc_lo12:", $symbol, "]"),
                    concat!("add x0, x0, :tlsdesc_lo12:", $symbol),
                    concat!(".tlsdesccall ", $symbol),
                    "blr x1",
                    "mrs x8, tpidr_el0",
                    "add x0, x8, x0",
                    out("x0") address,
                    out("x1") _,
                    out("x8") _,
                    out("x30") _,
                );
            }
            address
        }
    };
}

tls_slot_fn!(v1_slot_address, "custom_labels_current_set");
tls_slot_fn!(v2_slot_address, "otel_thread_ctx_v1");

/// Installs `set` (a v1 label set, or NULL) as the calling thread's `custom_labels_current_set`
/// and returns the previous pointer. Everything `set` points to must be written before the call.
pub fn swap_v1(set: *mut u8) -> *mut u8 {
    swap_slot(v1_slot_address(), set)
}

/// Installs `record` (an OTEP 4947 record, or NULL) as the calling thread's `otel_thread_ctx_v1`
/// and returns the previous pointer. The record must be complete before the call.
pub fn swap_v2(record: *mut u8) -> *mut u8 {
    swap_slot(v2_slot_address(), record)
}

fn swap_slot(slot_address: usize, value: *mut u8) -> *mut u8 {
    // Writes to the pointee must not move past the pointer store (a reader stops this thread at
    // an arbitrary instruction and follows the pointer).
    compiler_fence(Ordering::Release);
    // SAFETY: see the module invariant; AtomicPtr has the size and alignment of a pointer and the
    // reference does not outlive this call.
    let slot = unsafe { AtomicPtr::from_ptr(slot_address as *mut *mut u8) };
    slot.swap(value, Ordering::Relaxed)
}
