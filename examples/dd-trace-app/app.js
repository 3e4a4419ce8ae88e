'use strict'
// A Node app traced by the real `dd-trace` package (npm, pinned in package.json and
// package-lock.json) that speaks the conformance target protocol (conformance.md section 4).
//
// dd-trace publishes:
// * an OTEP 4719 process context (memfd `OTEL_CTX`, written by libdatadog through
//   @datadog/libdatadog-extras) with the service, env and version the tracer was started with, its
//   runtime id, version and host name, and the thread-local metadata of its thread context;
// * a Node-specific thread context: the TLS symbol `otel_thread_ctx_nodejs_v1` of the
//   @datadog/pprof addon (loaded with dlopen), which points into V8's async-context frame, with the
//   process context declaring `threadlocal.schema_version = nodejs_v1_dev`. It is not an OTEP 4947
//   `otel_thread_ctx_v1` record, and context-reader does not decode it: every thread's `v2` is
//   expected `null`.
//
// Threads: `--workers N` (default 4) worker_threads (each its own OS thread and V8 isolate with
// its own tracer) activate a span and stay inside it; `--idle N` (default 2) workers start the
// tracer and activate nothing; the main thread activates nothing and watches stdin. Every id in
// `expect` comes from the tracer's API in this process, never from a context reader.
//
// Run with Node >= 22 and `--experimental-async-context-frame` (dd-trace's thread context needs
// AsyncContextFrame; Node 24 has it on by default), with NODE_PATH pointing at the installed
// node_modules, e.g. after `cargo xtask tracers install`:
//
//   cargo xtask conformance --external "$(cargo xtask tracers command dd-trace)"

const fs = require('fs')
const { Worker, isMainThread, parentPort, workerData } = require('worker_threads')

const SERVICE = 'context-reader-dd-trace-app'
const ENV = 'conformance'
const VERSION = '2.7.1'
// libdatadog's process-context encoding (libdd-library-config `to_otel_process_ctx`): the SDK name
// it states, and the key it always puts first in the thread-local key map.
const SDK_NAME = 'libdatadog'
const LOCAL_ROOT_SPAN_ID_KEY = 'datadog.local_root_span_id'

// The tracer reads these when it starts; nothing talks to an agent (none runs here).
process.env.DD_TRACE_OTEL_CTX_ENABLED = 'true'
process.env.DD_TRACE_AGENT_URL ??= 'http://127.0.0.1:9'
process.env.DD_INSTRUMENTATION_TELEMETRY_ENABLED ??= 'false'
process.env.DD_REMOTE_CONFIGURATION_ENABLED ??= 'false'
process.env.DD_TRACE_STARTUP_LOGS ??= 'false'
process.env.DD_CRASHTRACKING_ENABLED ??= 'false'

const tracer = require('dd-trace').init({ service: SERVICE, env: ENV, version: VERSION })
const ddTraceVersion = require('dd-trace/package.json').version

// Every tracer (one per isolate: the main thread's and each worker's) has its own runtime id, and
// each publishes the one process context anew when it starts: the last one started is what a
// reader finds. Private API: dd-trace has no public accessor for it.
function runtimeId () {
  return tracer._tracer._config.tags['runtime-id']
}

function ownTid () {
  // "/proc/thread-self" resolves to "PID/task/TID" for the calling OS thread.
  return Number(fs.readlinkSync('/proc/thread-self').split('/').pop())
}

// Keeps the calling thread alive; with --busy it spins on CPU in 20 ms slices, letting the event
// loop run between them (the main thread reads stdin there; workers get their stop message).
function park (busy) {
  if (!busy) return setInterval(() => {}, 1 << 30)
  const slice = () => {
    const until = Date.now() + 20
    while (Date.now() < until) { /* on CPU */ }
    setImmediate(slice)
  }
  slice()
}

function parseArgs (argv) {
  const opts = { workers: 4, idle: 2, busy: false }
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--workers' && i + 1 < argv.length) opts.workers = Number(argv[++i])
    else if (argv[i] === '--idle' && i + 1 < argv.length) opts.idle = Number(argv[++i])
    else if (argv[i] === '--busy') opts.busy = true
    // anything else is ignored, as the protocol asks
  }
  return opts
}

if (!isMainThread) {
  const { withSpan, busy, index } = workerData
  parentPort.on('message', () => process.exit(0))
  if (withSpan) {
    const span = tracer.startSpan(`app.work.${index}`, { tags: { 'resource.name': `job-${index}` } })
    tracer.scope().activate(span, () => {
      const context = span.context()
      parentPort.postMessage({
        tid: ownTid(),
        runtimeId: runtimeId(),
        traceId: context.toTraceId(true),
        spanId: context.toSpanId(true),
      })
      park(busy)
    })
  } else {
    parentPort.postMessage({ tid: ownTid(), runtimeId: runtimeId() })
    park(busy)
  }
} else {
  main()
}

function main () {
  const opts = parseArgs(process.argv.slice(2))
  const workers = []
  const chosen = new Map() // tid -> what the worker reported
  let last // the report of the worker started last: its tracer published the process context
  // Workers start one after the other, so which tracer published last is known.
  const startNext = (k) => {
    if (k === opts.workers + opts.idle) return ready(opts, workers, chosen, last)
    const worker = new Worker(__filename, {
      workerData: { withSpan: k < opts.workers, busy: opts.busy, index: k },
      argv: process.argv.slice(2),
    })
    worker.once('message', (m) => {
      chosen.set(m.tid, m)
      last = m
      startNext(k + 1)
    })
    worker.on('error', (e) => { console.error(e); process.exit(1) })
    workers.push(worker)
  }
  startNext(0)
}

// dd-trace's process tags, published when its setting says so (tracer_metadata.js).
function processTags (config) {
  if (!config.DD_EXPERIMENTAL_PROPAGATE_PROCESS_TAGS_ENABLED) return {}
  const serialized = require('dd-trace/packages/dd-trace/src/process-tags').serialized
  return serialized ? { 'datadog.process_tags': serialized } : {}
}

// What dd-trace asks libdatadog to publish about its thread context (otel-thread-ctx.js
// getThreadLocalMetadata): the attributes @datadog/pprof names for dd-trace's key list, with
// libdatadog's implicit key 0 put first in the key map.
function threadLocalAttributes () {
  const { ATTRIBUTE_KEYS } = require('dd-trace/packages/dd-trace/src/otel-thread-ctx')
  const declared = require('@datadog/pprof').otelThreadCtx.getProcessContextAttributes(ATTRIBUTE_KEYS)
  const attributes = { ...declared }
  attributes['threadlocal.attribute_key_map'] = [LOCAL_ROOT_SPAN_ID_KEY, ...declared['threadlocal.attribute_key_map']]
  return attributes
}

function ready (opts, workers, chosen, last) {
  const pid = process.pid
  const threads = fs.readdirSync('/proc/self/task').map(Number).sort((a, b) => a - b).map((tid) => {
    const entry = { tid, name: fs.readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').replace(/\n$/, '') }
    // The app's own threads (main and workers) are on CPU with --busy; Node's and V8's own threads
    // sleep, so then only their tid and name are claimed.
    if (chosen.has(tid) || tid === pid || !opts.busy) {
      // No thread has an OTEP 4947 record: the spans' context is in the nodejs_v1 form.
      Object.assign(entry, { v1: null, v2: null, errors: [] })
    }
    return entry
  })
  for (const [tid, m] of chosen) {
    if (m.traceId) console.error(`dd-trace-app: thread ${tid} activated trace ${m.traceId} span ${m.spanId}`)
  }
  const config = tracer._tracer._config
  const expect = {
    pid,
    process_context: {
      mapping: '/memfd:OTEL_CTX (deleted)',
      version: 2,
      resource: {
        'service.name': SERVICE,
        'service.instance.id': last ? last.runtimeId : runtimeId(),
        'service.version': VERSION,
        'deployment.environment.name': ENV,
        'telemetry.sdk.language': 'nodejs',
        'telemetry.sdk.version': ddTraceVersion,
        'telemetry.sdk.name': SDK_NAME,
        // dd-trace passes its `hostname` setting, which is the agent's host (127.0.0.1 from
        // DD_TRACE_AGENT_URL here), not this machine's name.
        'host.name': config.hostname,
      },
      attributes: { ...processTags(config), ...threadLocalAttributes() },
    },
    threads,
    // The nodejs_v1 thread context is one the reader does not decode, and it must say so twice:
    // for the TLS symbol otel_thread_ctx_nodejs_v1 it finds in the pprof addon, then for the
    // schema the process context declares (the detail wording is the reader's, so only format
    // and kind are claimed).
    errors: [{ format: 'v2', kind: 'unsupported' }, { format: 'v2', kind: 'unsupported' }],
  }
  process.stdout.write('CONTEXT-READY ' + JSON.stringify({
    protocol: 1, pid, writer: `dd-trace-${ddTraceVersion}`, expect,
  }) + '\n')
  process.stdin.on('data', () => {})
  process.stdin.on('end', () => {
    for (const w of workers) w.postMessage('stop')
    Promise.all(workers.map((w) => new Promise((resolve) => w.once('exit', resolve))))
      .then(() => process.exit(0))
  })
  park(opts.busy)
}
