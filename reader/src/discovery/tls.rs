//! TLS address arithmetic, as pure per-arch functions (formats.md 4.2, 4.4, 4.5.3, 4.6).
//! Unit-tested for x86-64 and aarch64 on any host.

use crate::abi::{Arch, DtvLayout, Libc, TlsSegment};

/// Signed offset from the thread pointer to the start of the executable's static TLS block.
///
/// x86-64 (variant II): the block ends at TP, so the offset is `-tlsoff` with
/// `tlsoff = memsz + ((-vaddr - memsz) mod align)`. aarch64 (variant I): the block starts after
/// the 16-byte TCB, `tlsoff = 16 + ((vaddr - 16) mod align)`. These are the smallest offsets with
/// the right residue; glibc, musl and lld agree (pitfalls 9 and 10).
///
/// The segment's fields come from the target's file: the arithmetic is done in i128 (no u64
/// field can overflow it) and `None` means the offset does not fit an i64, a crafted `PT_TLS`.
pub fn executable_block_offset(arch: Arch, tls: &TlsSegment) -> Option<i64> {
    let align = i128::from(tls.align.max(1));
    let vaddr = i128::from(tls.vaddr);
    let memsz = i128::from(tls.memsz);
    let offset = match arch {
        Arch::X86_64 => -(memsz + (-vaddr - memsz).rem_euclid(align)),
        Arch::Aarch64 => 16 + (vaddr - 16).rem_euclid(align),
    };
    i64::try_from(offset).ok()
}

pub fn dtv_layout(arch: Arch, libc: Libc) -> DtvLayout {
    match (arch, libc) {
        (Arch::X86_64, Libc::Glibc) => DtvLayout {
            pointer_offset: 8,
            entry_size: 16,
            glibc_counter: true,
        },
        (Arch::X86_64, Libc::Musl) => DtvLayout {
            pointer_offset: 8,
            entry_size: 8,
            glibc_counter: false,
        },
        (Arch::Aarch64, Libc::Glibc) => DtvLayout {
            pointer_offset: 0,
            entry_size: 16,
            glibc_counter: true,
        },
        (Arch::Aarch64, Libc::Musl) => DtvLayout {
            pointer_offset: -8,
            entry_size: 8,
            glibc_counter: false,
        },
    }
}

/// A TLSDESC argument word: either a static TP offset, or a pointer to a dynamic descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DescriptorArgument {
    StaticOffset(i64),
    Dynamic(u64),
}

/// Tells static from dynamic descriptors (formats.md 4.5.3): static arguments are small TP
/// offsets (negative on x86-64; non-negative on aarch64, where musl's are below 16 because its
/// offsets already discount the TCB gap); dynamic ones are pointers to a heap descriptor.
/// `is_mapped` says whether `word1` is an address inside a mapping of the process: a low heap
/// (non-PIE, brk) can sit below 4 GiB, where an aarch64 offset could also be.
pub fn classify_descriptor_argument(arch: Arch, word1: u64, is_mapped: bool) -> DescriptorArgument {
    const STATIC_RANGE: i64 = 1 << 32;
    let signed = word1 as i64;
    let is_static = match arch {
        Arch::X86_64 => (-STATIC_RANGE..0).contains(&signed),
        Arch::Aarch64 => (0..STATIC_RANGE).contains(&signed) && !is_mapped,
    };
    if is_static {
        DescriptorArgument::StaticOffset(signed)
    } else {
        DescriptorArgument::Dynamic(word1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(vaddr: u64, memsz: u64, align: u64) -> TlsSegment {
        TlsSegment {
            vaddr,
            memsz,
            filesz: 0,
            align,
        }
    }

    // Recorded values, formats.md 4.4 "(verified)".
    #[test]
    fn x86_64_pie_memsz_0x4d_align_64() {
        let off = executable_block_offset(Arch::X86_64, &seg(0x3dc0, 0x4d, 0x40)).unwrap();
        assert_eq!(off, -128);
        assert_eq!(off + 0x40, -64, "S=0x40 sits at TP-64");
    }

    #[test]
    fn x86_64_static_memsz_0xb0_align_64() {
        let off = executable_block_offset(Arch::X86_64, &seg(0x4c50c0, 0xb0, 0x40)).unwrap();
        assert_eq!(off + 0x40, -128);
    }

    #[test]
    fn x86_64_small_block_align_8() {
        assert_eq!(
            executable_block_offset(Arch::X86_64, &seg(0x2df0, 8, 8)),
            Some(-8)
        );
        assert_eq!(
            executable_block_offset(Arch::X86_64, &seg(0x2df0, 0x14, 8)),
            Some(-24)
        );
    }

    #[test]
    fn x86_64_misaligned_vaddr_uses_residue() {
        // vaddr = 8 mod 16: tlsoff = 16 + ((-8 - 16) mod 16) = 16 + 8 = 24
        assert_eq!(
            executable_block_offset(Arch::X86_64, &seg(0x1008, 16, 16)),
            Some(-24)
        );
    }

    #[test]
    fn aarch64_align_64_starts_at_tp_plus_64() {
        let off = executable_block_offset(Arch::Aarch64, &seg(0x1fd40, 0x80, 0x40)).unwrap();
        assert_eq!(off, 64, "S=0 at TP+64, not TP+16");
        assert_eq!(off + 0x40, 128);
    }

    #[test]
    fn aarch64_small_align_starts_at_tp_plus_16() {
        assert_eq!(
            executable_block_offset(Arch::Aarch64, &seg(0x1fdd8, 8, 8)),
            Some(16)
        );
        assert_eq!(
            executable_block_offset(Arch::Aarch64, &seg(0x1fdd0, 8, 16)),
            Some(16)
        );
    }

    #[test]
    fn aarch64_misaligned_vaddr_uses_residue() {
        // vaddr = 0x20 mod 64: tlsoff = 16 + ((0x20 - 16) mod 64) = 32
        assert_eq!(
            executable_block_offset(Arch::Aarch64, &seg(0x1fd60, 8, 64)),
            Some(32)
        );
    }

    /// Crafted `PT_TLS` values: u64 extremes never panic (debug builds check overflow) and an
    /// offset that does not fit an i64 is `None`, not a truncated number.
    #[test]
    fn crafted_segments_do_not_overflow() {
        let max = u64::MAX;
        // x86-64: tlsoff = memsz + residue, about 2^64: not an i64.
        assert_eq!(executable_block_offset(Arch::X86_64, &seg(0, max, 1)), None);
        assert_eq!(
            executable_block_offset(Arch::X86_64, &seg(max, max, max)),
            None
        );
        // Largest memsz that still fits: -(2^63) exactly (vaddr + memsz = 0 mod align).
        assert_eq!(
            executable_block_offset(Arch::X86_64, &seg(1 << 63, 1 << 63, 1)),
            Some(i64::MIN)
        );
        // aarch64: 16 + (vaddr - 16) mod align < 16 + align; with align 2^64 - 1 past i64.
        assert_eq!(
            executable_block_offset(Arch::Aarch64, &seg(max - 1, 8, max)),
            None
        );
        assert_eq!(
            executable_block_offset(Arch::Aarch64, &seg(max, max, 0)),
            Some(16),
            "align 0 is read as 1"
        );
        // vaddr below 16 with a big alignment: the residue is taken modulo align, not negative.
        assert_eq!(
            executable_block_offset(Arch::Aarch64, &seg(0, 8, 1 << 40)),
            Some(16 + (1 << 40) - 16)
        );
    }

    #[test]
    fn dtv_entry_and_counter_addresses_wrap_on_purpose() {
        // Module ids and DTV pointers are target data: wrapping gives an address that is just
        // unreadable, never a panic.
        let g = dtv_layout(Arch::X86_64, Libc::Glibc);
        assert_eq!(g.counter_addr(8), u64::MAX - 7);
        assert_eq!(g.entry_addr(u64::MAX, 1), 15);
        assert_eq!(g.entry_addr(0x1000, u64::MAX), 0x1000 - 16);
    }

    #[test]
    fn dtv_layouts_per_libc_and_arch() {
        let g = dtv_layout(Arch::X86_64, Libc::Glibc);
        assert_eq!(
            (
                g.pointer_offset,
                g.counter_addr(0x1000),
                g.entry_addr(0x1000, 2)
            ),
            (8, 0xff0, 0x1020)
        );
        let m = dtv_layout(Arch::X86_64, Libc::Musl);
        assert_eq!(
            (
                m.pointer_offset,
                m.counter_addr(0x1000),
                m.entry_addr(0x1000, 2)
            ),
            (8, 0x1000, 0x1010)
        );
        assert_eq!(dtv_layout(Arch::Aarch64, Libc::Glibc).pointer_offset, 0);
        assert_eq!(dtv_layout(Arch::Aarch64, Libc::Musl).pointer_offset, -8);
    }

    #[test]
    fn descriptor_arguments() {
        // Recorded: static 0xffffffffffffff68, dynamic heap pointer 0x562d682d4840 (x86-64).
        assert_eq!(
            classify_descriptor_argument(Arch::X86_64, 0xffff_ffff_ffff_ff68, false),
            DescriptorArgument::StaticOffset(-152)
        );
        assert_eq!(
            classify_descriptor_argument(Arch::X86_64, 0x562d_682d_4840, true),
            DescriptorArgument::Dynamic(0x562d_682d_4840)
        );
        assert_eq!(
            classify_descriptor_argument(Arch::Aarch64, 0x40, false),
            DescriptorArgument::StaticOffset(0x40)
        );
        assert_eq!(
            classify_descriptor_argument(Arch::Aarch64, 0xaaaa_d000_1000, true),
            DescriptorArgument::Dynamic(0xaaaa_d000_1000)
        );
        // musl aarch64 static offsets below 16 (seen in the VM: 0 and 8), and a low non-PIE heap
        // pointer that only the maps can tell from an offset.
        assert_eq!(
            classify_descriptor_argument(Arch::Aarch64, 8, false),
            DescriptorArgument::StaticOffset(8)
        );
        assert_eq!(
            classify_descriptor_argument(Arch::Aarch64, 0x4a_2010, true),
            DescriptorArgument::Dynamic(0x4a_2010)
        );
    }
}
