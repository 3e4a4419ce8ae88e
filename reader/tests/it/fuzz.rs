//! Fuzzing without a nightly toolchain (cargo-fuzz needs one): proptest drives every decoder over
//! arbitrary memory images, and ELF inspection and discovery over arbitrary and mutated ELF files.
//!
//! Each target checks more than "no panic": errors stay within `MAX_ERRORS_PER_FORMAT`, reads
//! stay within the decoders' bounds, the number of reads is bounded, and text rendering of what
//! was decoded carries no control or bidirectional character.
//!
//! `cargo test` runs `DEFAULT_CASES` cases in all. For long runs set `FUZZ_CASES` to the total
//! number of cases wanted (split evenly over the targets below), e.g.
//! `FUZZ_CASES=10000000 cargo test --release -p context-reader --test it fuzz:: -- --nocapture`.
//! Each target prints how many cases it ran and how long they took. A failure is shrunk by
//! proptest and its seed saved under `reader/tests/it/proptest-regressions/` (commit it, and add
//! the shrunk input as a named regression case here).

use std::cell::Cell;
use std::path::Path;
use std::time::Instant;

use crate::fixtures::varint;

use context_reader::abi::Arch;
use context_reader::abi::{Libc, TlsSegment};
use context_reader::decode::process_ctx::{
    decode_payload, key_map, read_mapping, to_json_map, MappingRead, DEFAULT_MAX_PAYLOAD,
};
use context_reader::decode::thread_ctx::{decode_record, RecordLayout};
use context_reader::decode::v1::{decode_v0_inline, decode_v1_set, V1Limits};
use context_reader::decode::Decoded;
use context_reader::discovery::elf::{
    inspect, ElfModule, SymbolInfo, TlsReloc, TlsRelocKind, CONTEXT_SYMBOLS,
};
use context_reader::discovery::maps::Mapping;
use context_reader::discovery::{load_bias, plan_from_modules, LoadedModule};
use context_reader::memory::{ImageMemory, Memory, MemoryError};
use context_reader::plan::{ReadPlan, Resolution, SlotPlan, SlotRule, V1Layout, V1Plan, V2Plan};
use context_reader::read::read_thread;
use context_reader::render;
use context_reader::snapshot::{
    Backend, Bytes, ErrorKind, Format, ReadError, Snapshot, ThreadSnapshot, MAX_ERRORS_PER_FORMAT,
};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;

/// Cases of one `cargo test` run, over all targets (about 10 s of CPU in a debug build).
const DEFAULT_CASES: u64 = 6_000;
/// A long run prints a progress line per target every this many cases.
const PROGRESS_EVERY: u64 = 100_000;
/// The fuzz targets below; `FUZZ_CASES` is split evenly over them.
const TARGETS: u64 = 9;

/// Cases for one target: `FUZZ_CASES / TARGETS`, or its share of `DEFAULT_CASES`.
fn cases() -> u32 {
    let total = std::env::var("FUZZ_CASES")
        .ok()
        .map(|v| {
            v.replace('_', "")
                .parse::<u64>()
                .unwrap_or_else(|e| panic!("FUZZ_CASES={v:?}: {e}"))
        })
        .unwrap_or(DEFAULT_CASES);
    u32::try_from(total.div_ceil(TARGETS).max(1)).unwrap_or(u32::MAX)
}

/// Runs `test` over `strategy` for `cases()` cases and reports the count and time. A
/// failure panics with proptest's shrunk input (printed with `{:?}`).
fn fuzz<S: Strategy>(name: &str, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S::Value: std::fmt::Debug,
{
    let cases = cases();
    let config = ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let started = Instant::now();
    // Progress every PROGRESS_EVERY cases, so a long run cut short still says how far it got.
    let done = Cell::new(0u64);
    let result = TestRunner::new(config).run(&strategy, |v| {
        done.set(done.get() + 1);
        if done.get().is_multiple_of(PROGRESS_EVERY) {
            eprintln!(
                "fuzz {name}: {} of {cases} cases, {:.0} s, no failure so far",
                done.get(),
                started.elapsed().as_secs_f64()
            );
        }
        test(v)
    });
    eprintln!(
        "fuzz {name}: {cases} cases in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    if let Err(e) = result {
        panic!("fuzz {name}: {e}");
    }
}

// ---- memory images ----

/// Where the regions of an image start; words in the image point near them, so decoders follow
/// pointers into mapped memory as often as into unmapped, non-canonical or wrapping addresses.
const BASES: [u64; 6] = [
    0x1_0000,
    0x2_0000,
    0x7fff_ffff_f000,
    0x10,
    u64::MAX - 0x1000,
    0x8000_0000_0000, // non-canonical on x86-64
];

const SPECIAL: [u64; 12] = [
    0,
    1,
    u64::MAX,
    u64::MAX - 7,
    1 << 63,
    1 << 62,
    0xffff_ffff,
    4096,
    4097,
    65_535,
    65_536,
    (1 << 32) + 1,
];

fn arb_word() -> BoxedStrategy<u64> {
    prop_oneof![
        4 => (0..BASES.len(), 0u64..640).prop_map(|(i, o)| BASES[i].wrapping_add(o)),
        3 => 0u64..300,
        2 => prop::sample::select(&SPECIAL[..]),
        1 => (0u64..16).prop_map(|o| u64::MAX - o),
        1 => any::<u64>(),
    ]
    .boxed()
}

fn arb_bytes_with_words(max_cells: usize) -> BoxedStrategy<Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            3 => arb_word().prop_map(|w| w.to_le_bytes().to_vec()),
            1 => prop::collection::vec(any::<u8>(), 1..8),
        ],
        0..max_cells,
    )
    .prop_map(|cells| cells.concat())
    .boxed()
}

/// A fuzz address space: a few regions at `BASES`, or (`synthetic`) every address readable with
/// bytes derived from the address, pointer-like words included, so any pointer chain goes on.
#[derive(Debug, Clone)]
struct Image {
    regions: Vec<(usize, Vec<u8>)>,
    synthetic: Option<u64>,
}

fn arb_image() -> BoxedStrategy<Image> {
    (
        prop::collection::vec((0..BASES.len(), arb_bytes_with_words(48)), 0..5),
        prop_oneof![4 => Just(None), 1 => any::<u64>().prop_map(Some)],
    )
        .prop_map(|(regions, synthetic)| Image { regions, synthetic })
        .boxed()
}

/// Synthetic reads longer than this fail (after being counted).
const SYNTHETIC_MAX_READ: usize = 4096;

/// Reads through an `Image`, counting reads and remembering the largest.
struct FuzzMemory {
    image: ImageMemory,
    synthetic: Option<u64>,
    reads: Cell<u64>,
    largest_read: Cell<usize>,
}

impl FuzzMemory {
    fn new(image: &Image) -> Self {
        let mut mem = ImageMemory::new();
        for (base, bytes) in &image.regions {
            mem.insert(BASES[*base], bytes.clone());
        }
        FuzzMemory {
            image: mem,
            synthetic: image.synthetic,
            reads: Cell::new(0),
            largest_read: Cell::new(0),
        }
    }
}

fn mix(mut x: u64) -> u64 {
    // splitmix64 finaliser
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The synthetic word at 8-aligned address `at`.
fn synthetic_word(seed: u64, at: u64) -> u64 {
    let h = mix(seed ^ mix(at));
    match h % 8 {
        0 | 1 => BASES[(h >> 8) as usize % BASES.len()].wrapping_add((h >> 16) % 640),
        2 | 3 => (h >> 8) % 300,
        4 => SPECIAL[(h >> 8) as usize % SPECIAL.len()],
        5 => u64::from_le_bytes(*b"OTEL_CTX"),
        6 => 1,
        _ => h,
    }
}

impl Memory for FuzzMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        self.reads.set(self.reads.get() + 1);
        self.largest_read
            .set(self.largest_read.get().max(buf.len()));
        let Some(seed) = self.synthetic else {
            return self.image.read(addr, buf);
        };
        if addr.checked_add(buf.len() as u64).is_none() {
            return Err(MemoryError::new(addr, buf.len(), "past the last address"));
        }
        if buf.len() > SYNTHETIC_MAX_READ {
            // Keeps a case fast: 4,096 labels of 64 KiB each would be 256 MiB of made-up bytes.
            return Err(MemoryError::new(addr, buf.len(), "synthetic: large read"));
        }
        if self.image.read(addr, buf).is_ok() {
            return Ok(());
        }
        for (i, b) in buf.iter_mut().enumerate() {
            let a = addr + i as u64;
            *b = synthetic_word(seed, a & !7).to_le_bytes()[(a & 7) as usize];
        }
        Ok(())
    }
}

// ---- invariants shared by the targets ----

/// At most `MAX_ERRORS_PER_FORMAT` listed errors and one `omitted` entry per format.
fn check_bounded(errors: &[ReadError]) -> Result<(), TestCaseError> {
    for format in [Format::V1, Format::V2, Format::ProcessContext, Format::Tls] {
        let listed = errors
            .iter()
            .filter(|e| e.format == format && e.kind != ErrorKind::Omitted)
            .count();
        let summaries = errors
            .iter()
            .filter(|e| e.format == format && e.kind == ErrorKind::Omitted)
            .count();
        prop_assert!(listed <= MAX_ERRORS_PER_FORMAT, "{errors:?}");
        prop_assert!(summaries <= 1, "{errors:?}");
    }
    Ok(())
}

fn is_bidi(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{61c}')
}

/// Renders `thread` (plus a process context, if any) as text and JSON: the text carries no
/// control character but newlines and no bidi control; the JSON serialises.
fn check_rendering(
    thread: ThreadSnapshot,
    process_context: Option<context_reader::snapshot::ProcessContext>,
) -> Result<(), TestCaseError> {
    let mut snap = Snapshot {
        pid: 1,
        backend: Backend::Ptrace,
        process_context,
        threads: vec![thread],
        errors: vec![],
    };
    snap.normalise();
    let text = render::text(&snap);
    prop_assert!(
        !text
            .chars()
            .any(|c| (c.is_control() && c != '\n') || is_bidi(c)),
        "unescaped character in {text:?}"
    );
    let _ = serde_json::to_string(&snap.to_json()).expect("snapshots serialise");
    Ok(())
}

fn thread_with<T>(d: &Decoded<T>, fill: impl FnOnce(&mut ThreadSnapshot)) -> ThreadSnapshot {
    let mut t = ThreadSnapshot::new(7, Bytes(b"fuzz\xff\x1b\xe2\x80\xae".to_vec()));
    t.errors = d.errors.clone();
    fill(&mut t);
    t
}

// ---- decoder targets ----

fn arb_limits() -> impl Strategy<Value = V1Limits> {
    prop_oneof![
        3 => Just(V1Limits::default()),
        2 => (0u64..64, 0u64..128).prop_map(|(max_labels, max_string_len)| V1Limits {
            max_labels,
            max_string_len
        }),
    ]
}

#[test]
fn fuzz_v1_and_v0_decoders() {
    fuzz(
        "v1_and_v0_decoders",
        (arb_image(), arb_word(), arb_limits()),
        |(image, addr, limits)| {
            for inline in [false, true] {
                let mem = FuzzMemory::new(&image);
                let d = if inline {
                    decode_v0_inline(&mem, addr, &limits)
                } else {
                    decode_v1_set(&mem, addr, &limits)
                };
                check_bounded(&d.errors)?;
                let labels = d.value.as_ref().map_or(0, |v| v.labels.len() as u64);
                prop_assert!(labels <= limits.max_labels);
                let array = limits.max_labels * 32;
                let bound = 24u64.max(array).max(limits.max_string_len);
                prop_assert!(mem.largest_read.get() as u64 <= bound);
                prop_assert!(mem.reads.get() <= 2 + 2 * limits.max_labels);
                let v1 = d.value.clone();
                check_rendering(thread_with(&d, |t| t.v1 = v1), None)?;
            }
            Ok(())
        },
    );
}

fn arb_key_map() -> impl Strategy<Value = Vec<Option<Bytes>>> {
    prop::collection::vec(
        prop::option::of(prop::collection::vec(any::<u8>(), 0..12).prop_map(Bytes)),
        0..12,
    )
}

#[test]
fn fuzz_thread_context_decoders() {
    fuzz(
        "thread_context_decoders",
        (arb_image(), arb_word(), arb_key_map()),
        |(image, addr, keys)| {
            for layout in [RecordLayout::Otep4947, RecordLayout::Draft] {
                let mem = FuzzMemory::new(&image);
                let d = decode_record(&mem, addr, layout, &keys);
                check_bounded(&d.errors)?;
                prop_assert!(mem.largest_read.get() <= 65_535);
                prop_assert!(mem.reads.get() <= 3 + 2 * 255);
                if let Some(ctx) = &d.value {
                    prop_assert!(ctx.attributes.len() <= 256);
                }
                let v2 = d.value.clone();
                check_rendering(thread_with(&d, |t| t.v2 = v2), None)?;
            }
            Ok(())
        },
    );
}

/// A header (formats.md 3.2) that is valid more often than chance would make it, then payload
/// bytes: protobuf-like or raw.
fn arb_context_mapping() -> impl Strategy<Value = (Image, u32, Vec<u8>)> {
    let header = (
        prop_oneof![6 => Just(*b"OTEL_CTX"), 1 => any::<[u8; 8]>()],
        prop_oneof![6 => Just(2u32), 1 => any::<u32>()],
        prop_oneof![4 => 0u32..700, 1 => prop::sample::select(vec![u32::MAX, 1 << 31, DEFAULT_MAX_PAYLOAD, DEFAULT_MAX_PAYLOAD + 1])],
        prop_oneof![40 => 1u64.., 1 => Just(0u64)],
        prop_oneof![3 => Just(BASES[1]), 1 => arb_word()],
    );
    (
        arb_image(),
        header,
        prop_oneof![Just(DEFAULT_MAX_PAYLOAD), 0u32..600],
        prop_oneof![2 => arb_protobuf(), 1 => prop::collection::vec(any::<u8>(), 0..600)],
    )
        .prop_map(
            |(mut image, (sig, version, size, ts, ptr), limit, payload)| {
                let mut h = sig.to_vec();
                h.extend_from_slice(&version.to_le_bytes());
                h.extend_from_slice(&size.to_le_bytes());
                h.extend_from_slice(&ts.to_le_bytes());
                h.extend_from_slice(&ptr.to_le_bytes());
                // Header at BASES[0], payload at BASES[1]: after the random regions, so they win.
                image.regions.push((0, h));
                image.regions.push((1, payload.clone()));
                (image, limit, payload)
            },
        )
}

#[test]
fn fuzz_process_context_mapping_and_payload() {
    fuzz(
        "process_context_mapping",
        (arb_context_mapping(), arb_word()),
        |((image, limit, _), other_start)| {
            for start in [BASES[0], other_start] {
                let mem = FuzzMemory::new(&image);
                let r = read_mapping(&mem, start, "/memfd:OTEL_CTX (deleted)", limit);
                prop_assert!(mem.largest_read.get() as u64 <= 32u64.max(u64::from(limit)));
                prop_assert!(mem.reads.get() <= 8 * 4);
                if let MappingRead::Context(c) = r {
                    let mut t = ThreadSnapshot::new(1, Bytes::from("t"));
                    t.v2 = None;
                    check_rendering(t, Some(c.context))?;
                }
            }
            Ok(())
        },
    );
}

/// Protobuf-shaped bytes: fields of the payload's messages with valid, short or lying lengths,
/// nested up to a few levels, or nested very deep in one chain.
fn arb_protobuf() -> BoxedStrategy<Vec<u8>> {
    let leaf = prop_oneof![
        // LEN field with its true length
        (1u32..9, prop::collection::vec(any::<u8>(), 0..24)).prop_map(|(f, b)| len_field(f, &b)),
        // VARINT / I64 / I32 fields
        (1u32..9, any::<u64>()).prop_map(|(f, v)| [varint(u64::from(f << 3)), varint(v)].concat()),
        (1u32..9, any::<u64>()).prop_map(|(f, v)| [
            varint(u64::from(f << 3 | 1)),
            v.to_le_bytes().to_vec()
        ]
        .concat()),
        // a length that lies, or a raw tag
        (
            1u32..9,
            prop::sample::select(&SPECIAL[..]),
            prop::collection::vec(any::<u8>(), 0..8)
        )
            .prop_map(|(f, n, b)| [varint(u64::from(f << 3 | 2)), varint(n), b].concat()),
        prop::collection::vec(any::<u8>(), 1..6),
    ];
    let tree = leaf.prop_recursive(4, 64, 6, |inner| {
        (1u32..8, prop::collection::vec(inner, 1..6))
            .prop_map(|(f, children)| len_field(f, &children.concat()))
    });
    prop_oneof![
        8 => prop::collection::vec(tree, 0..6).prop_map(|v| v.concat()),
        1 => (1usize..3000, prop::sample::select(vec![1u32, 2, 5, 6]))
            .prop_map(|(depth, f)| deep_chain(depth, f)),
    ]
    .boxed()
}

fn len_field(field: u32, bytes: &[u8]) -> Vec<u8> {
    [
        varint(u64::from(field << 3 | 2)),
        varint(bytes.len() as u64),
        bytes.to_vec(),
    ]
    .concat()
}

/// `depth` LEN fields numbered `field`, each holding the next.
fn deep_chain(depth: usize, field: u32) -> Vec<u8> {
    let mut reversed = Vec::new();
    for _ in 0..depth {
        let mut prefix = varint(u64::from(field << 3 | 2));
        prefix.extend(varint(reversed.len() as u64));
        reversed.extend(prefix.iter().rev());
    }
    reversed.reverse();
    reversed
}

#[test]
fn fuzz_payload_decoder() {
    fuzz("payload_decoder", arb_protobuf(), |bytes| {
        if let Ok((resource, attributes)) = decode_payload(&bytes) {
            let keys = key_map(&attributes, &resource);
            prop_assert!(keys.keys.len() <= 256);
            let context = context_reader::snapshot::ProcessContext {
                mapping: "[anon:OTEL_CTX]".into(),
                version: 2,
                published_at_ns: 1,
                resource: to_json_map(&resource),
                attributes: to_json_map(&attributes),
            };
            check_rendering(ThreadSnapshot::new(1, Bytes::from("t")), Some(context))?;
        }
        Ok(())
    });
}

// ---- read plans executed over images (read.rs) ----

fn arb_rule() -> impl Strategy<Value = SlotRule> {
    prop_oneof![
        prop_oneof![3 => -700i64..700, 1 => any::<i64>()]
            .prop_map(|offset| SlotRule::TpRelative { offset }),
        (
            any::<bool>(),
            any::<bool>(),
            prop_oneof![3 => 0u64..8, 1 => any::<u64>()],
            prop_oneof![3 => 0u64..640, 1 => any::<u64>()]
        )
            .prop_map(|(aarch64, musl, module_id, offset)| {
                let arch = if aarch64 { Arch::Aarch64 } else { Arch::X86_64 };
                let libc = if musl { Libc::Musl } else { Libc::Glibc };
                SlotRule::Dtv {
                    dtv: context_reader::discovery::tls::dtv_layout(arch, libc),
                    module_id,
                    offset,
                }
            }),
    ]
}

fn slot(i: usize, rule: SlotRule) -> SlotPlan {
    SlotPlan {
        module: format!("/m{i}"),
        symbol: "s".into(),
        rule,
        resolution: Resolution::InitialExecGot,
    }
}

#[test]
fn fuzz_read_thread() {
    let plan = (
        prop::collection::vec((arb_rule(), any::<bool>()), 0..4),
        prop::collection::vec((arb_rule(), any::<bool>()), 0..4),
    );
    let keys = (
        prop::option::of(prop::sample::select(vec![
            "tlsdesc_v1_dev",
            "tls_v1",
            "other",
        ])),
        arb_key_map(),
    );
    fuzz(
        "read_thread",
        (arb_image(), arb_word(), plan, keys, arb_limits()),
        |(image, tp, (v1, v2), (schema, keys), limits)| {
            let plan = ReadPlan {
                pid: 1,
                arch: Arch::host(),
                libc: Libc::Glibc,
                v1: v1
                    .into_iter()
                    .enumerate()
                    .map(|(i, (rule, inline))| V1Plan {
                        slot: slot(i % 2, rule),
                        layout: if inline {
                            V1Layout::Inline
                        } else {
                            V1Layout::Pointer
                        },
                    })
                    .collect(),
                v2: v2
                    .into_iter()
                    .enumerate()
                    .map(|(i, (rule, draft))| V2Plan {
                        slot: slot(i % 2, rule),
                        layout: if draft {
                            RecordLayout::Draft
                        } else {
                            RecordLayout::Otep4947
                        },
                    })
                    .collect(),
                context_mappings: vec![],
                errors: vec![],
            };
            let keys = context_reader::decode::process_ctx::ThreadKeyMap {
                schema_version: schema.map(str::to_string),
                keys,
            };
            let mem = FuzzMemory::new(&image);
            let mut t = ThreadSnapshot::new(3, Bytes::from("t"));
            read_thread(&mem, tp, &plan, &keys, &limits, &mut t);
            check_bounded(&t.errors)?;
            check_rendering(t, None)
        },
    );
}

// ---- discovery over arbitrary modules, maps and memory ----

fn arb_elf_module() -> impl Strategy<Value = ElfModule> {
    let symbol = (
        prop::sample::select(&CONTEXT_SYMBOLS[..]),
        arb_word(),
        prop_oneof![Just(8u64), Just(4), any::<u64>()],
        prop_oneof![4 => Just(true), 1 => Just(false)],
    )
        .prop_map(|(name, value, size, is_tls)| SymbolInfo {
            name: name.into(),
            value,
            size,
            is_tls,
            in_dynsym: true,
            is_global: true,
        });
    let reloc = (
        prop::sample::select(vec![
            TlsRelocKind::DtpMod,
            TlsRelocKind::DtpOff,
            TlsRelocKind::TpOff,
            TlsRelocKind::TlsDesc,
        ]),
        prop::option::weighted(0.8, prop::sample::select(&CONTEXT_SYMBOLS[..])),
        arb_word(),
        prop_oneof![3 => -64i64..640, 1 => any::<i64>()],
    )
        .prop_map(|(kind, symbol, offset, addend)| TlsReloc {
            kind,
            symbol: symbol.map(str::to_string),
            offset,
            addend,
        });
    let tls = prop::option::of((arb_word(), arb_word(), arb_word(), arb_word()).prop_map(
        |(vaddr, memsz, filesz, align)| TlsSegment {
            vaddr,
            memsz,
            filesz,
            align,
        },
    ));
    (
        any::<bool>(),
        prop::collection::vec(symbol, 0..4),
        prop::collection::vec(reloc, 0..6),
        tls,
        (arb_word(), arb_word()),
    )
        .prop_map(
            |(aarch64, symbols, tls_relocs, tls, first_load)| ElfModule {
                arch: if aarch64 { Arch::Aarch64 } else { Arch::X86_64 },
                is_dyn: true,
                interp: None,
                has_dynsym: true,
                soname: None,
                pie_flag: false,
                tls,
                first_load,
                symbols,
                tls_relocs,
                static_libc: None,
            },
        )
}

fn arb_mappings() -> impl Strategy<Value = Vec<Mapping>> {
    prop::collection::vec(
        (arb_word(), arb_word(), arb_word()).prop_map(|(start, len, offset)| Mapping {
            start,
            end: start.wrapping_add(len),
            perms: "r--p".into(),
            offset,
            inode: 1,
            path: "/m0".into(),
        }),
        0..4,
    )
}

fn modules_from(elfs: Vec<(ElfModule, u64, bool)>) -> Vec<LoadedModule> {
    elfs.into_iter()
        .enumerate()
        .map(|(i, (elf, bias, is_main))| LoadedModule {
            path: format!("/m{}", i % 2),
            bias,
            is_main,
            elf,
        })
        .collect()
}

/// Discovery's plan and everything it hands on: the plan's slots are then executed.
fn discover_and_read(
    modules: &[LoadedModule],
    maps: &[Mapping],
    mem: &FuzzMemory,
    tp: u64,
) -> Result<(), TestCaseError> {
    let plan = plan_from_modules(1, modules, maps, mem);
    for m in modules {
        let refs: Vec<&Mapping> = maps.iter().collect();
        let _ = load_bias(&m.elf, &refs);
    }
    let mut t = ThreadSnapshot::new(3, Bytes::from("t"));
    read_thread(
        mem,
        tp,
        &plan,
        &Default::default(),
        &V1Limits::default(),
        &mut t,
    );
    check_bounded(&t.errors)?;
    check_rendering(t, None)
}

#[test]
fn fuzz_discovery_plan() {
    fuzz(
        "discovery_plan",
        (
            prop::collection::vec((arb_elf_module(), arb_word(), any::<bool>()), 0..3),
            arb_mappings(),
            arb_image(),
            arb_word(),
        ),
        |(elfs, maps, image, tp)| {
            let mem = FuzzMemory::new(&image);
            discover_and_read(&modules_from(elfs), &maps, &mem, tp)
        },
    );
}

// ---- ELF inspection over mutated and arbitrary files ----

/// Seed files: the integration-test writers built by build.rs (executables and a TLSDESC DSO,
/// glibc and musl), when they were built.
fn seeds() -> &'static [Vec<u8>] {
    static SEEDS: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    SEEDS.get_or_init(|| {
        let mut found = Vec::new();
        let root = Path::new(concat!(env!("OUT_DIR"), "/it-writers"));
        let Ok(dirs) = std::fs::read_dir(root) else {
            return found;
        };
        for dir in dirs.flatten() {
            for file in std::fs::read_dir(dir.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                if let Ok(bytes) = std::fs::read(file.path()) {
                    if bytes.starts_with(b"\x7fELF") {
                        found.push(bytes);
                    }
                }
            }
        }
        found.sort();
        found
    })
}

/// Byte ranges of a seed worth mutating: the ELF header, program and section header tables, and
/// the sections discovery reads (symbols, dynamic relocations, `.dynamic`, `.tbss`/`.tdata`).
fn hot_ranges(data: &[u8]) -> Vec<(usize, usize)> {
    use object::{Object, ObjectSection};
    let mut ranges = vec![(0, 64)];
    let u64_at = |o: usize| u64::from_le_bytes(data[o..o + 8].try_into().unwrap()) as usize;
    let u16_at = |o: usize| u16::from_le_bytes(data[o..o + 2].try_into().unwrap()) as usize;
    ranges.push((u64_at(0x20), u16_at(0x38) * 56));
    ranges.push((u64_at(0x28), u16_at(0x3c) * 64));
    if let Ok(file) = object::File::parse(data) {
        for section in file.sections() {
            let name = section.name().unwrap_or("");
            if [
                ".dynsym",
                ".symtab",
                ".rela.dyn",
                ".rela.plt",
                ".dynamic",
                ".dynstr",
                ".tdata",
            ]
            .contains(&name)
            {
                if let Some((o, n)) = section.file_range() {
                    ranges.push((o as usize, n as usize));
                }
            }
        }
    }
    ranges.retain(|(o, n)| *n > 0 && o + n <= data.len());
    ranges
}

#[derive(Debug, Clone)]
enum Mutation {
    /// Overwrite with a value of 1, 2, 4 or 8 bytes, at a hot range (index, position) or anywhere.
    Write {
        hot: Option<usize>,
        at: usize,
        value: u64,
        width: u8,
    },
    Truncate(usize),
}

fn arb_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        12 => (
            prop::option::weighted(0.8, any::<usize>()),
            any::<usize>(),
            arb_word(),
            prop::sample::select(vec![1u8, 2, 4, 8])
        )
            .prop_map(|(hot, at, value, width)| Mutation::Write { hot, at, value, width }),
        1 => any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn mutate(seed: &[u8], ranges: &[(usize, usize)], mutations: &[Mutation]) -> Vec<u8> {
    let mut data = seed.to_vec();
    for m in mutations {
        match *m {
            Mutation::Write {
                hot,
                at,
                value,
                width,
            } => {
                let at = match hot {
                    Some(r) if !ranges.is_empty() => {
                        let (o, n) = ranges[r % ranges.len()];
                        o + at % n
                    }
                    _ => at % data.len().max(1),
                };
                for i in 0..usize::from(width) {
                    if let Some(b) = data.get_mut(at + i) {
                        *b = value.to_le_bytes()[i];
                    }
                }
            }
            Mutation::Truncate(n) => data.truncate(n % (data.len() + 1)),
        }
    }
    data
}

/// Inspection, then everything that uses its result: the ELF lint, load bias, discovery and reads.
fn inspect_and_use(
    data: &[u8],
    bias: u64,
    maps: &[Mapping],
    image: &Image,
    tp: u64,
) -> Result<(), TestCaseError> {
    let Ok(elf) = inspect(data) else {
        return Ok(());
    };
    let report = context_reader::lint::lint_module("/fuzz/libcustomlabels.so", data, &elf);
    let _ = serde_json::to_string(&report).expect("reports serialise");
    let mem = FuzzMemory::new(image);
    let modules = modules_from(vec![(elf.clone(), bias, true), (elf, bias ^ 0x1000, false)]);
    discover_and_read(&modules, maps, &mem, tp)
}

#[test]
fn fuzz_elf_mutated_seeds() {
    let seeds = seeds();
    if seeds.is_empty() {
        // build.rs records why a writer could not be built; the ptrace tests report it.
        eprintln!("fuzz elf_mutated_seeds: no seed ELF files were built, nothing to mutate");
        return;
    }
    let ranges: Vec<Vec<(usize, usize)>> = seeds.iter().map(|s| hot_ranges(s)).collect();
    fuzz(
        "elf_mutated_seeds",
        (
            0..seeds.len(),
            prop::collection::vec(arb_mutation(), 1..8),
            arb_word(),
            arb_mappings(),
            arb_image(),
            arb_word(),
        ),
        |(seed, mutations, bias, maps, image, tp)| {
            let data = mutate(&seeds[seed], &ranges[seed], &mutations);
            inspect_and_use(&data, bias, &maps, &image, tp)
        },
    );
}

/// An ELF64 little-endian header for x86-64 or aarch64 with tables at `phoff`/`shoff`.
fn elf_header(
    machine: u16,
    e_type: u16,
    phoff: u64,
    phnum: u16,
    shoff: u64,
    shnum: u16,
    shstrndx: u16,
) -> Vec<u8> {
    let mut h = b"\x7fELF\x02\x01\x01\x00".to_vec();
    h.resize(16, 0);
    h.extend_from_slice(&e_type.to_le_bytes());
    h.extend_from_slice(&machine.to_le_bytes());
    h.extend_from_slice(&1u32.to_le_bytes());
    h.extend_from_slice(&0u64.to_le_bytes()); // entry
    h.extend_from_slice(&phoff.to_le_bytes());
    h.extend_from_slice(&shoff.to_le_bytes());
    h.extend_from_slice(&0u32.to_le_bytes()); // flags
    for v in [64u16, 56, phnum, 64, shnum, shstrndx] {
        h.extend_from_slice(&v.to_le_bytes());
    }
    h
}

#[test]
fn fuzz_elf_arbitrary_bytes() {
    let header = (
        prop::sample::select(vec![62u16, 183, 3, 0]),
        prop::sample::select(vec![2u16, 3, 4]),
        prop_oneof![Just(64u64), arb_word()],
        0u16..8,
        prop_oneof![Just(64u64), arb_word()],
        0u16..8,
        0u16..8,
    );
    fuzz(
        "elf_arbitrary_bytes",
        (
            prop::option::weighted(0.8, header),
            arb_bytes_with_words(256),
            arb_word(),
            arb_image(),
        ),
        |(header, body, bias, image)| {
            let data = match header {
                Some((machine, e_type, phoff, phnum, shoff, shnum, shstrndx)) => [
                    elf_header(machine, e_type, phoff, phnum, shoff, shnum, shstrndx),
                    body,
                ]
                .concat(),
                None => body,
            };
            inspect_and_use(&data, bias, &[], &image, BASES[0])
        },
    );
}

// ---- core files ----

/// Mutated and truncated synthetic cores of both arches (notes, `NT_FILE`, segments): parsing is
/// an error or a core, and a core's snapshot (over an empty sysroot: every file missing) has
/// bounded errors; reads of its memory at arbitrary addresses fail cleanly.
#[test]
fn fuzz_core_files() {
    use crate::core::{CoreBuilder, EM_AARCH64, EM_X86_64};
    use context_reader::backend::core::{CoreFile, CoreMemory};
    let seed = |machine: u16| {
        let mut b = CoreBuilder::new(machine).thread(100, 0x7f00_0000_0740);
        if machine == EM_AARCH64 {
            b = b.arm_tls(0x7f00_0000_0740);
        }
        b.psinfo(100, b"writer")
            .entry(0x40_1000)
            .files(&[
                (0x40_0000, 0x40_1000, 0, "/w/writer"),
                (0x40_1000, 0x40_2000, 0x1000, "/w/writer"),
                (
                    0x7f00_1000_0000,
                    0x7f00_1000_1000,
                    0,
                    "/memfd:OTEL_CTX (deleted)",
                ),
            ])
            .thread(101, 0x7f00_0000_0f40)
            .load(0x40_0000, b"\x7fELF".to_vec(), 0x1000, 4)
            .load(0x7f00_0000_0000, vec![0x11; 0x1000], 0x2000, 6)
            .load(0x7f00_1000_0000, b"OTEL_CTX".to_vec(), 0x1000, 6)
            .build()
    };
    let seeds = [seed(EM_X86_64), seed(EM_AARCH64)];
    // Everything before the dumped bytes: ELF header, program headers, notes.
    let ranges: Vec<Vec<(usize, usize)>> = seeds
        .iter()
        .map(|s| vec![(0, 64), (64, s.len().saturating_sub(0x1010) - 64)])
        .collect();
    let sysroot = tempfile::tempdir().unwrap();
    fuzz(
        "core_files",
        (
            0..seeds.len(),
            prop::collection::vec(arb_mutation(), 0..8),
            arb_word(),
        ),
        |(seed, mutations, addr)| {
            let data = mutate(&seeds[seed], &ranges[seed], &mutations);
            let Ok(core) = CoreFile::from_bytes(data) else {
                return Ok(());
            };
            prop_assert!(core.threads.len() <= context_reader::backend::core::MAX_THREADS);
            let mem = CoreMemory::dumped(&core);
            let mut buf = [0u8; 16];
            let _ = mem.read(addr, &mut buf);
            let (snapshot, _) = context_reader::session::snapshot_of_core(
                &core,
                sysroot.path(),
                &context_reader::SnapshotOptions::default(),
            );
            check_bounded(&snapshot.errors)?;
            for t in &snapshot.threads {
                check_bounded(&t.errors)?;
            }
            let _ = render::text(&snapshot);
            Ok(())
        },
    );
}
