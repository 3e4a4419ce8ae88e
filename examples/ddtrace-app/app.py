#!/usr/bin/env python3
"""A Python app traced by the real `ddtrace` package (PyPI, pinned in requirements.txt) that speaks
the conformance target protocol (conformance.md section 4).

ddtrace publishes, from its native extension `ddtrace/internal/native/_native*.so` (loaded by the
interpreter with dlopen, so its TLS is reached through a TLSDESC descriptor and the DTV):

* an OTEP 4719 process context (memfd `OTEL_CTX`) with the service, env and version the tracer was
  started with, its runtime id, version and host name, and the thread-local key map;
* an OTEP 4947 thread context (`otel_thread_ctx_v1`) on every thread where a span is active: trace
  id, span id, trace flags from the sampling priority, and the local root span id as attribute 0.

This app starts the tracer with a known service, env and version, activates spans on `--threads`
threads (default 4; thread 0 activates a child span inside its root span, so its record names the
child span and the root as local root), starts `--idle` threads (default 2) that activate nothing,
and prints `expect` from what it chose and what the tracer's API handed back (ids, runtime id,
host name): nothing in it comes from a context reader. Every value it claims about the tracer's
encoding is stated here, next to where it is claimed.

Threads the app did not start (the tracer's own) are claimed to carry no context. With `--busy`
(sampling backends) every thread the app started spins on CPU, but the tracer's own threads sleep,
so for them only `tid` and `name` are claimed: whether a sleeping thread is sampled in a window is
not something a writer can know.

Run it with the interpreter of a virtualenv that has requirements.txt installed, e.g. after
`cargo xtask tracers install`:

    cargo xtask conformance --external 'target/tracers/ddtrace/venv/bin/python examples/ddtrace-app/app.py'
"""

import json
import os
import select
import sys
import threading

SERVICE = "context-reader-ddtrace-app"
ENV = "conformance"
VERSION = "1.4.2"

# The tracer reads its configuration from the environment when it is imported: set what this app
# chose, and keep it from talking to anything (no agent runs; nothing is flushed before exit).
os.environ["DD_SERVICE"] = SERVICE
os.environ["DD_ENV"] = ENV
os.environ["DD_VERSION"] = VERSION
os.environ["DD_TRACE_OTEL_CTX_ENABLED"] = "true"
os.environ.setdefault("DD_TRACE_AGENT_URL", "http://127.0.0.1:9")
os.environ.setdefault("DD_INSTRUMENTATION_TELEMETRY_ENABLED", "false")
os.environ.setdefault("DD_REMOTE_CONFIGURATION_ENABLED", "false")
os.environ.setdefault("DD_TRACE_STARTUP_LOGS", "false")
os.environ.setdefault("DD_CRASHTRACKING_ENABLED", "false")

import ddtrace  # noqa: E402
from ddtrace.internal.hostname import get_hostname  # noqa: E402
from ddtrace.internal.runtime import get_runtime_id  # noqa: E402
from ddtrace.trace import tracer  # noqa: E402

# libdatadog's process-context encoding (libdd-library-config `TracerMetadata::to_otel_process_ctx`):
# the SDK name it states and the key it always puts first in the thread-local key map.
SDK_NAME = "libdatadog"
LOCAL_ROOT_SPAN_ID_KEY = "datadog.local_root_span_id"


def spin(iterations):
    """Pure-Python work: the thread keeps the GIL, so it stays on CPU."""
    x = 0
    for i in range(iterations):
        x ^= i
    return x


def parse_args(argv):
    threads, idle, busy = 4, 2, False
    i = 0
    while i < len(argv):
        if argv[i] == "--threads" and i + 1 < len(argv):
            threads = int(argv[i + 1])
            i += 1
        elif argv[i] == "--idle" and i + 1 < len(argv):
            idle = int(argv[i + 1])
            i += 1
        elif argv[i] == "--busy":
            busy = True
        i += 1  # anything else is ignored, as the protocol asks
    return threads, idle, busy


def flags_of(root_span):
    """The trace flags ddtrace writes (ddtrace/internal/opentelemetry/thread_context.py): sampled
    when the local root's sampling priority is known and positive."""
    priority = root_span.context.sampling_priority
    return 1 if priority is not None and priority > 0 else 0


def main():
    n_spans, n_idle, busy = parse_args(sys.argv[1:])
    stop = threading.Event()
    parked = threading.Barrier(n_spans + n_idle + 1)
    chosen = {}  # tid -> the record this app expects on that thread
    lock = threading.Lock()

    def park():
        parked.wait()
        while not stop.is_set():
            if busy:
                spin(20000)
            else:
                stop.wait()

    def with_span(k):
        with tracer.trace(f"app.work.{k}", resource=f"job-{k}") as root:
            active, root_of_active = root, root
            if k == 0:
                child = tracer.trace("app.work.child", resource="job-0-child")
                active = child
            record = {
                "layout": "otep-4947",
                "trace_id": f"{active.trace_id:032x}",
                "span_id": f"{active.span_id:016x}",
                "trace_flags": flags_of(root_of_active),
                # ddtrace writes the local root span id at key index 0 as 16 lowercase hex digits.
                "attributes": [{"key": LOCAL_ROOT_SPAN_ID_KEY, "value": f"{root.span_id:016x}"}],
            }
            with lock:
                chosen[threading.get_native_id()] = record
            park()
            if active is not root:
                active.finish()

    def without_span():
        with lock:
            chosen[threading.get_native_id()] = None
        park()

    workers = [threading.Thread(target=with_span, args=(k,), name=f"span-{k}") for k in range(n_spans)]
    workers += [threading.Thread(target=without_span, name=f"idle-{k}") for k in range(n_idle)]
    for w in workers:
        w.start()
    parked.wait()

    pid = os.getpid()
    threads = []
    for tid in sorted(int(t) for t in os.listdir("/proc/self/task")):
        with open(f"/proc/self/task/{tid}/comm") as comm:
            entry = {"tid": tid, "name": comm.read().rstrip("\n")}
        if tid in chosen:
            entry.update({"v1": None, "v2": chosen[tid], "errors": []})
        elif tid == pid:
            # The main thread activates no span.
            entry.update({"v1": None, "v2": None, "errors": []})
        elif not busy:
            # The tracer's own threads carry no span context.
            entry.update({"v1": None, "v2": None, "errors": []})
        threads.append(entry)

    expect = {
        "pid": pid,
        "process_context": {
            "mapping": "/memfd:OTEL_CTX (deleted)",
            "version": 2,
            "resource": {
                "service.name": SERVICE,
                "service.instance.id": get_runtime_id(),
                "service.version": VERSION,
                "deployment.environment.name": ENV,
                "telemetry.sdk.language": "python",
                "telemetry.sdk.version": ddtrace.__version__,
                "telemetry.sdk.name": SDK_NAME,
                "host.name": get_hostname(),
            },
            "attributes": {
                "threadlocal.schema_version": "tlsdesc_v1_dev",
                "threadlocal.attribute_key_map": [LOCAL_ROOT_SPAN_ID_KEY],
            },
        },
        "threads": threads,
        "errors": [],
    }
    ready = {"protocol": 1, "pid": pid, "writer": f"ddtrace-{ddtrace.__version__}", "expect": expect}
    sys.stdout.write("CONTEXT-READY " + json.dumps(ready) + "\n")
    sys.stdout.flush()

    # Keep every thread alive and unchanged until stdin reaches EOF (with --busy the main thread
    # computes between polls, as in examples/python-writer).
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
