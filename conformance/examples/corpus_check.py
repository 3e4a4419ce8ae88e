#!/usr/bin/env python3
"""Independent checker of the context-reader test-vector corpus (standard library only).

For every vector of an executable local-exec variant it finds, from the vector's files alone
(the core and the sysroot; not plan.json, not our reader): the threads and their thread pointers
(NT_PRSTATUS fs_base on x86-64, NT_ARM_TLS on aarch64), the main executable (NT_AUXV AT_ENTRY
inside an NT_FILE mapping), its PT_TLS segment and the st_value of the context symbols, then
each thread's TLS slots (static TLS arithmetic, formats.md 4.4), and it decodes the OTEP 4947
record ids and the custom-labels v1 label set there and compares them with expect.json.

usage: corpus_check.py CORPUS_DIR      exit 0 when every checked vector agrees, 1 otherwise
"""
import json
import lzma
import os
import struct
import sys

PT_LOAD, PT_NOTE, PT_TLS = 1, 4, 7
NT_PRSTATUS, NT_AUXV, NT_FILE, NT_ARM_TLS = 1, 6, 0x46494C45, 0x401
EM_X86_64, EM_AARCH64 = 62, 183
SYMBOLS = ("otel_thread_ctx_v1", "custom_labels_current_set")


def u64(b, at):
    return struct.unpack_from("<Q", b, at)[0]


def phdrs(elf):
    phoff, = struct.unpack_from("<Q", elf, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    for i in range(phnum):
        p_type, p_flags, off, vaddr, _, filesz, memsz, align = struct.unpack_from(
            "<IIQQQQQQ", elf, phoff + i * phentsize)
        yield p_type, off, vaddr, filesz, memsz, align


def notes(data):
    at = 0
    while at + 12 <= len(data):
        namesz, descsz, ntype = struct.unpack_from("<III", data, at)
        name = data[at + 12:at + 12 + namesz].rstrip(b"\0")
        desc_at = at + 12 + (namesz + 3) // 4 * 4
        yield name, ntype, data[desc_at:desc_at + descsz]
        at = desc_at + (descsz + 3) // 4 * 4


class Core:
    def __init__(self, data):
        self.data = data
        self.machine, = struct.unpack_from("<H", data, 18)
        self.loads, self.threads, self.files, self.entry = [], [], [], None
        for p_type, off, vaddr, filesz, memsz, _ in phdrs(data):
            if p_type == PT_LOAD:
                self.loads.append((vaddr, off, filesz))
            elif p_type == PT_NOTE:
                for name, ntype, desc in notes(data[off:off + filesz]):
                    if name == b"CORE" and ntype == NT_PRSTATUS:
                        tid, = struct.unpack_from("<I", desc, 32)
                        tp = u64(desc, 112 + 21 * 8) if self.machine == EM_X86_64 else None
                        self.threads.append([tid, tp])
                    elif name == b"LINUX" and ntype == NT_ARM_TLS:
                        self.threads[-1][1] = u64(desc, 0)
                    elif name == b"CORE" and ntype == NT_AUXV:
                        for i in range(0, len(desc) - 15, 16):
                            if u64(desc, i) == 9:  # AT_ENTRY
                                self.entry = u64(desc, i + 8)
                    elif name == b"CORE" and ntype == NT_FILE:
                        count, page = u64(desc, 0), u64(desc, 8)
                        names = desc[16 + 24 * count:].split(b"\0")
                        for i in range(count):
                            s, e, o = struct.unpack_from("<QQQ", desc, 16 + 24 * i)
                            self.files.append((s, e, o * page, names[i].decode()))

    def read(self, addr, n):
        for vaddr, off, filesz in self.loads:
            if vaddr <= addr and addr + n <= vaddr + filesz:
                return self.data[off + addr - vaddr:off + addr - vaddr + n]
        raise LookupError("%#x not in the core" % addr)


def tls_symbols(elf):
    """st_value of the context symbols (.symtab and .dynsym) and the PT_TLS (memsz, align)."""
    tls = next(((m, a) for t, _, _, _, m, a in phdrs(elf) if t == PT_TLS), None)
    shoff, = struct.unpack_from("<Q", elf, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", elf, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", elf, shoff + i * shentsize) for i in range(shnum)]
    found = {}
    for _, sh_type, _, _, off, size, link, _, _, entsize in sections:
        if sh_type not in (2, 11):  # SHT_SYMTAB, SHT_DYNSYM
            continue
        stroff = sections[link][4]
        for i in range(size // entsize):
            st_name, st_info, _, _, st_value, _ = struct.unpack_from("<IBBHQQ", elf, off + i * entsize)
            end = elf.index(b"\0", stroff + st_name)
            name = elf[stroff + st_name:end].decode(errors="replace")
            if name in SYMBOLS and st_info & 0xF == 6:  # STT_TLS
                found[name] = st_value
    return tls, found


def roundup(x, a):
    a = max(a, 1)
    return (x + a - 1) // a * a


def as_bytes(v):
    return bytes.fromhex(v["hex"]) if isinstance(v, dict) else v.encode()


def read_labels(core, set_ptr):
    storage, count = u64(core.read(set_ptr, 16), 0), u64(core.read(set_ptr, 16), 8)
    labels = {}
    for i in range(min(count, 64)):
        klen, kbuf, vlen, vbuf = struct.unpack_from("<QQQQ", core.read(storage + 32 * i, 32))
        if kbuf == 0:
            continue
        key = core.read(kbuf, klen) if klen else b""
        labels.setdefault(key, core.read(vbuf, vlen) if vlen else b"")
    return labels


def check_vector(root, vdir):
    vector = json.load(open(os.path.join(vdir, "vector.json")))
    expect = json.load(open(os.path.join(vdir, "expect.json")))
    core = Core(lzma.open(os.path.join(vdir, vector["core"])).read())
    exe = next(p for s, e, _, p in core.files if core.entry is not None and s <= core.entry < e)
    elf = open(os.path.join(root, "sysroot", exe.lstrip("/")), "rb").read()
    (memsz, align), symbols = tls_symbols(elf)
    if core.machine == EM_X86_64:
        block = -roundup(memsz, align)
    else:
        block = roundup(16, align)
    want = {t["tid"]: t for t in expect["threads"]}
    problems = []
    if sorted(want) != sorted(t for t, _ in core.threads):
        problems.append("threads %s in the core, %s expected" % (sorted(t for t, _ in core.threads), sorted(want)))
    for tid, tp in core.threads:
        t = want.get(tid, {})
        for name, value in symbols.items():
            pointer = u64(core.read(tp + block + value, 8), 0)
            if name == "otel_thread_ctx_v1" and "v2" in t:
                got = None
                if pointer:
                    rec = core.read(pointer, 28)
                    if rec[24] == 1:
                        got = (rec[0:16].hex() if any(rec[0:16]) else None, rec[16:24].hex() if any(rec[16:24]) else None)
                exp = t["v2"] and (t["v2"].get("trace_id"), t["v2"].get("span_id"))
                if got != exp:
                    problems.append("thread %d v2 ids %s, expected %s" % (tid, got, exp))
            if name == "custom_labels_current_set" and "v1" in t:
                got = read_labels(core, pointer) if pointer else None
                exp = t["v1"] and {as_bytes(l["key"]): as_bytes(l["value"]) for l in t["v1"]["labels"]}
                if got != exp:
                    problems.append("thread %d v1 labels %s, expected %s" % (tid, got, exp))
    return problems, len(core.threads) * len(symbols)


def main():
    root = sys.argv[1]
    checked = failed = skipped = slots = 0
    vectors = os.path.join(root, "vectors")
    for variant in sorted(os.listdir(vectors)):
        for scenario in sorted(os.listdir(os.path.join(vectors, variant))):
            vdir = os.path.join(vectors, variant, scenario)
            props = json.load(open(os.path.join(vdir, "vector.json"))).get("properties") or {}
            if props.get("place") != "exe" or props.get("access_model") != "local-exec":
                skipped += 1
                continue
            problems, n = check_vector(root, vdir)
            checked += 1
            slots += n
            print("%s %s/%s" % ("FAIL" if problems else "ok  ", variant, scenario))
            for p in problems:
                print("     " + p)
            failed += bool(problems)
    print("corpus_check: %d vectors checked (%d TLS slots), %d failed, %d skipped (not executable local-exec)"
          % (checked, slots, failed, skipped))
    sys.exit(1 if failed or not checked else 0)


if __name__ == "__main__":
    main()
