#!/usr/bin/env python3
"""An OTEP 4719 process-context writer in pure Python that speaks the conformance target protocol.

It shares no code with context-reader and is not built by this workspace: it is the example of a
writer "in any language" that `context-reader certify` certifies:

    context-reader certify -- python3 examples/python-writer/process_context_writer.py

What it publishes (conformance.md section 4, formats.md section 3): a memfd `OTEL_CTX` mapping with
the 32-byte header (signature, version 2, payload size, CLOCK_BOOTTIME timestamp written last,
payload address) and a protobuf `ProcessContext{resource, attributes}` payload encoded by hand
below, then `--threads` worker threads. Python cannot define ELF thread-local symbols, so every
thread reports `"v1": null, "v2": null`; that is part of what is certified.

Options: `--threads N` (default 3), `--busy` (threads spin, for sampling backends), `--bug NAME`
(publish one deliberate defect, to see what certification reports): `timestamp-zero` (the
timestamp is never written, so the context never becomes ready), `short-payload` (payload_size one
byte short), `wrong-service` (claims a service.name it did not publish). Other arguments are
ignored, as the protocol asks.
"""

import ctypes
import json
import mmap
import os
import select
import struct
import sys
import threading
import time

HEADER_SIZE = 32
PR_SET_VMA = 0x53564D41
PR_SET_VMA_ANON_NAME = 0
BUGS = ("timestamp-zero", "short-payload", "wrong-service")


# --- protobuf wire format (just what ProcessContext needs) -----------------------------------

def varint(n):
    n &= (1 << 64) - 1  # int64 values are encoded as their two's complement
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field_bytes(number, data):
    return varint(number << 3 | 2) + varint(len(data)) + data


def any_value(v):
    """opentelemetry.proto.common.v1.AnyValue"""
    if isinstance(v, bool):
        return varint(2 << 3) + varint(int(v))
    if isinstance(v, int):
        return varint(3 << 3) + varint(v)
    if isinstance(v, float):
        return varint(4 << 3 | 1) + struct.pack("<d", v)
    if isinstance(v, str):
        return field_bytes(1, v.encode())
    if isinstance(v, bytes):
        return field_bytes(7, v)
    if isinstance(v, list):
        return field_bytes(5, b"".join(field_bytes(1, any_value(x)) for x in v))
    if isinstance(v, dict):
        return field_bytes(6, b"".join(field_bytes(1, key_value(k, x)) for k, x in v.items()))
    raise TypeError(v)


def key_value(key, value):
    return field_bytes(1, key.encode()) + field_bytes(2, any_value(value))


def process_context(resource, attributes):
    """ProcessContext{resource = 1: Resource{attributes = 1}, attributes = 2}"""
    encoded_resource = b"".join(field_bytes(1, key_value(k, v)) for k, v in resource.items())
    return field_bytes(1, encoded_resource) + b"".join(
        field_bytes(2, key_value(k, v)) for k, v in attributes.items()
    )


def expected_json(v):
    """How the reader renders an AnyValue (conformance.md section 3)."""
    if isinstance(v, bytes):
        return {"hex": v.hex()}
    if isinstance(v, int) and not isinstance(v, bool) and abs(v) > 2**53 - 1:
        return str(v)
    if isinstance(v, list):
        return [expected_json(x) for x in v]
    if isinstance(v, dict):
        return {k: expected_json(x) for k, x in v.items()}
    return v


# --- publication -----------------------------------------------------------------------------

class Publication:
    """The header mapping and the payload buffer; both live as long as the process."""

    def __init__(self, payload, bug):
        self.payload = ctypes.create_string_buffer(payload, len(payload))
        fd = os.memfd_create("OTEL_CTX", os.MFD_CLOEXEC)
        os.ftruncate(fd, HEADER_SIZE)
        self.map = mmap.mmap(fd, HEADER_SIZE, flags=mmap.MAP_PRIVATE,
                             prot=mmap.PROT_READ | mmap.PROT_WRITE)
        os.close(fd)
        self.map.madvise(mmap.MADV_DONTFORK)
        self.address = ctypes.addressof(ctypes.c_char.from_buffer(self.map))
        size = len(payload) - (1 if bug == "short-payload" else 0)
        # Every field but the timestamp, then the timestamp (0 means "being written").
        self.map[0:16] = b"OTEL_CTX" + struct.pack("<II", 2, size)
        self.map[24:32] = struct.pack("<Q", ctypes.addressof(self.payload))
        self.published_at_ns = 0
        if bug != "timestamp-zero":
            self.published_at_ns = max(1, time.clock_gettime_ns(time.CLOCK_BOOTTIME))
            self.map[16:24] = struct.pack("<Q", self.published_at_ns)
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                               ctypes.c_char_p]
        libc.prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, self.address, mmap.PAGESIZE, b"OTEL_CTX")

    def mapping_name(self):
        """The name /proc/self/maps gives the header mapping (it depends on the kernel)."""
        with open("/proc/self/maps") as maps:
            for line in maps:
                fields = line.split(maxsplit=5)
                start, end = (int(x, 16) for x in fields[0].split("-"))
                if start <= self.address < end:
                    return fields[5].rstrip("\n") if len(fields) > 5 else ""
        raise RuntimeError("header mapping not in /proc/self/maps")


def spin(iterations):
    """Pure-Python work: the thread keeps the GIL, so it stays on CPU."""
    x = 0
    for i in range(iterations):
        x ^= i
    return x


# --- the target protocol ---------------------------------------------------------------------

def parse_args(argv):
    threads, busy, bug = 3, False, None
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--threads" and i + 1 < len(argv):
            threads = int(argv[i + 1])
            i += 1
        elif arg == "--busy":
            busy = True
        elif arg == "--bug" and i + 1 < len(argv):
            bug = argv[i + 1]
            if bug not in BUGS:
                sys.exit(f"--bug: one of {', '.join(BUGS)}")
            i += 1
        i += 1  # anything else is ignored, as the protocol asks
    return threads, busy, bug


def main():
    n_threads, busy, bug = parse_args(sys.argv[1:])
    pid = os.getpid()
    resource = {
        "service.name": "python-process-context-writer",
        "service.instance.id": f"pid-{pid}",
        "process.pid": pid,
        "telemetry.sdk.language": "python",
        "test.bool": True,
        "test.double": 0.25,
        "test.negative": -7,
        "test.big": 2**62,
        "test.bytes": b"\x00\xff",
        "test.array": ["x", 2, True],
        "test.kvlist": {"inner": "y"},
    }
    attributes = {"python.version": sys.version.split()[0]}
    publication = Publication(process_context(resource, attributes), bug)

    stop = threading.Event()
    parked = threading.Barrier(n_threads + 1)

    def worker():
        parked.wait()
        while not stop.is_set():
            if busy:
                spin(20000)
            else:
                stop.wait()

    workers = [threading.Thread(target=worker, name=f"py-worker-{k}") for k in range(n_threads)]
    for w in workers:
        w.start()
    parked.wait()

    claimed = dict(resource)
    if bug == "wrong-service":
        claimed["service.name"] = "a-service-it-never-published"
    tids = sorted(int(t) for t in os.listdir("/proc/self/task"))
    threads = []
    for tid in tids:
        with open(f"/proc/self/task/{tid}/comm") as comm:
            name = comm.read().rstrip("\n")
        threads.append({"tid": tid, "name": name, "v1": None, "v2": None, "errors": []})
    expect = {
        "pid": pid,
        "process_context": {
            "mapping": publication.mapping_name(),
            "version": 2,
            "published_at_ns": publication.published_at_ns,
            "resource": {k: expected_json(v) for k, v in claimed.items()},
            "attributes": {k: expected_json(v) for k, v in attributes.items()},
        },
        "threads": threads,
        "errors": [],
    }
    ready = {"protocol": 1, "pid": pid, "writer": "python-process-context-writer", "expect": expect}
    sys.stdout.write("CONTEXT-READY " + json.dumps(ready) + "\n")
    sys.stdout.flush()

    # Keep every thread alive and unchanged until stdin reaches EOF. With --busy the main thread
    # spins too, so a sampling reader sees it on CPU. Python threads take turns on the GIL, and a
    # thread waiting for it is off CPU, so it computes between stdin polls: a poll releases the GIL
    # and would leave it waiting most of the time.
    stdin = sys.stdin.fileno()
    while True:
        if busy:
            spin(20000)
        readable, _, _ = select.select([stdin], [], [], 0 if busy else None)
        if readable and not os.read(stdin, 4096):
            break
    stop.set()
    for w in workers:
        w.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
