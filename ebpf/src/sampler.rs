//! Loads the embedded BPF object, attaches it to cpu-clock on every online CPU and polls its ring buffer.

use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::{Duration, Instant};

use aya::maps::{HashMap, MapData, PerCpuArray, RingBuf};
use aya::programs::perf_event::{
    PerfEventConfig, PerfEventLinkId, PerfEventScope, SamplePolicy, SoftwareEvent,
};
use aya::programs::PerfEvent;
use aya::{Ebpf, EbpfLoader};

use crate::error::EbpfError;
use crate::layout::{RawProcessParams, CR_COUNTER_DROPPED, CR_COUNTER_SCRATCH_MISSING};
use crate::rules::ProcessParams;
use crate::sample::Sample;
use crate::BPF_OBJECT;

/// Where the kernel exposes its BTF; CO-RE needs it.
pub const KERNEL_BTF_PATH: &str = "/sys/kernel/btf/vmlinux";
const PROGRAM_NAME: &str = "sample_context";
const MAP_PROCESSES: &str = "processes";
const MAP_SAMPLES: &str = "samples";
const MAP_SCRATCH: &str = "scratch";
const MAP_COUNTERS: &str = "counters";
/// How long `collect` sleeps when the ring buffer is empty.
const POLL_INTERVAL: Duration = Duration::from_millis(5);

/// Options of [`Sampler::load`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SamplerOptions {
    /// cpu-clock sampling frequency per CPU, in Hz.
    pub frequency_hz: u64,
}

impl Default for SamplerOptions {
    fn default() -> Self {
        SamplerOptions { frequency_hz: 99 }
    }
}

/// Counters of a running sampler.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Samples received by user space (all `collect` calls so far).
    pub samples: u64,
    /// Samples the kernel could not emit (ring buffer full, or no scratch entry for the CPU).
    pub drops: u64,
    /// Runs of the program (every tick on every CPU, watched or not); 0 if stats are off.
    pub run_count: u64,
    /// Total run time of the program in ns; 0 if stats are off.
    pub run_time_ns: u64,
    /// Whether `BPF_ENABLE_STATS(BPF_STATS_RUN_TIME)` succeeded, i.e. the two fields above count.
    pub run_stats_enabled: bool,
}

impl Stats {
    /// Mean cost of one program run in ns, if any run was counted.
    pub fn mean_run_ns(&self) -> Option<f64> {
        (self.run_count > 0).then(|| self.run_time_ns as f64 / self.run_count as f64)
    }
}

/// The loaded and attached sampler. Dropping it detaches and unloads everything.
pub struct Sampler {
    ebpf: Ebpf,
    processes: HashMap<MapData, u32, RawProcessParams>,
    ring: RingBuf<MapData>,
    counters: PerCpuArray<MapData, u64>,
    samples_received: u64,
    /// Events attached by [`Sampler::load`], detached with the sampler.
    owned: Attachment,
    /// Keeps run-time statistics enabled while the sampler lives.
    _run_stats: Option<OwnedFd>,
}

impl std::fmt::Debug for Sampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sampler")
            .field("samples_received", &self.samples_received)
            .finish_non_exhaustive()
    }
}

fn take_map(ebpf: &mut Ebpf, name: &'static str) -> Result<aya::maps::Map, EbpfError> {
    ebpf.take_map(name)
        .ok_or(EbpfError::ObjectMismatch { kind: "map", name })
}

/// Perf events the program is attached to; give it back to [`Sampler::detach`] (dropping it
/// leaves the events attached until the sampler itself is dropped).
#[derive(Debug, Default)]
#[must_use = "detach the events with Sampler::detach"]
pub struct Attachment {
    links: Vec<PerfEventLinkId>,
}

impl Attachment {
    /// Number of perf events in this attachment.
    pub fn len(&self) -> usize {
        self.links.len()
    }
    /// Whether no event is attached.
    pub fn is_empty(&self) -> bool {
        self.links.is_empty()
    }
    /// Moves `other`'s events into this attachment.
    pub fn merge(&mut self, other: Attachment) {
        self.links.extend(other.links);
    }
}

/// What [`Sampler::attach_threads`] did: the threads with their own event, and the ones without.
#[derive(Debug, Default)]
pub struct ThreadAttachment {
    pub attachment: Attachment,
    /// Threads that got an event.
    pub attached: Vec<u32>,
    /// Threads that did not, with the reason (`ESRCH`: the thread exited already).
    pub failed: Vec<(u32, EbpfError)>,
}

impl ThreadAttachment {
    /// Whether some thread failed for another reason than having exited (e.g. no file
    /// descriptors left): the caller should fall back to per-CPU sampling for coverage.
    pub fn needs_fallback(&self) -> bool {
        self.failed.iter().any(|(_, e)| !e.is_no_such_thread())
    }
}

fn load_error_syscall(call: &'static str, source: std::io::Error) -> EbpfError {
    EbpfError::Syscall { call, source }
}

impl Sampler {
    /// Loads the program, creates its maps and attaches one cpu-clock perf event per online CPU
    /// at `options.frequency_hz`. No process is watched until [`Sampler::watch`].
    pub fn load(options: SamplerOptions) -> Result<Sampler, EbpfError> {
        let mut sampler = Sampler::load_unattached()?;
        let attachment = sampler.attach_cpus(options.frequency_hz)?;
        sampler.owned.merge(attachment);
        Ok(sampler)
    }

    /// Loads (and so verifies) the program and creates its maps, without attaching it to any
    /// perf event: see [`Sampler::attach_cpus`] and [`Sampler::attach_threads`]. This is the
    /// expensive step (the verifier); a loaded sampler can serve any number of watches.
    pub fn load_unattached() -> Result<Sampler, EbpfError> {
        if !Path::new(KERNEL_BTF_PATH).exists() {
            return Err(EbpfError::BtfMissing {
                path: KERNEL_BTF_PATH,
            });
        }
        let possible_cpus = aya::util::nr_cpus().map_err(|(file, source)| EbpfError::Syscall {
            call: if file.is_empty() {
                "read /sys/devices/system/cpu/possible"
            } else {
                file
            },
            source,
        })?;

        let mut ebpf = EbpfLoader::new()
            .map_max_entries(MAP_SCRATCH, possible_cpus as u32)
            .load(BPF_OBJECT)
            .map_err(EbpfError::from_loader)?;

        let processes =
            HashMap::try_from(take_map(&mut ebpf, MAP_PROCESSES)?).map_err(|source| {
                EbpfError::Map {
                    map: MAP_PROCESSES,
                    source,
                }
            })?;
        let ring = RingBuf::try_from(take_map(&mut ebpf, MAP_SAMPLES)?).map_err(|source| {
            EbpfError::Map {
                map: MAP_SAMPLES,
                source,
            }
        })?;
        let counters =
            PerCpuArray::try_from(take_map(&mut ebpf, MAP_COUNTERS)?).map_err(|source| {
                EbpfError::Map {
                    map: MAP_COUNTERS,
                    source,
                }
            })?;

        let run_stats = aya::sys::enable_stats(aya::sys::Stats::RunTime).ok();

        let mut sampler = Sampler {
            ebpf,
            processes,
            ring,
            counters,
            samples_received: 0,
            owned: Attachment::default(),
            _run_stats: run_stats,
        };
        sampler
            .program_mut()?
            .load()
            .map_err(EbpfError::from_program)?;
        Ok(sampler)
    }

    fn program_mut(&mut self) -> Result<&mut PerfEvent, EbpfError> {
        self.ebpf
            .program_mut(PROGRAM_NAME)
            .ok_or(EbpfError::ObjectMismatch {
                kind: "program",
                name: PROGRAM_NAME,
            })?
            .try_into()
            .map_err(EbpfError::from_program)
    }

    /// Attaches the program to one cpu-clock perf event per online CPU, `frequency_hz` ticks
    /// per second each: every task that runs is seen, watched or not (the program returns at
    /// once for unwatched ones), and a thread's chance to be sampled depends on how many
    /// threads share the CPUs.
    pub fn attach_cpus(&mut self, frequency_hz: u64) -> Result<Attachment, EbpfError> {
        if frequency_hz == 0 {
            return Err(load_error_syscall(
                "perf_event_open",
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "sampling frequency 0 Hz"),
            ));
        }
        let online = aya::util::online_cpus()
            .map_err(|(file, source)| EbpfError::Syscall { call: file, source })?;
        let program = self.program_mut()?;
        let mut attachment = Attachment::default();
        for cpu in online {
            match program.attach(
                PerfEventConfig::Software(SoftwareEvent::CpuClock),
                PerfEventScope::AllProcessesOneCpu { cpu },
                SamplePolicy::Frequency(frequency_hz),
                false,
            ) {
                Ok(link) => attachment.links.push(link),
                Err(error) => {
                    self.detach(attachment);
                    return Err(EbpfError::from_program(error));
                }
            }
        }
        Ok(attachment)
    }

    /// Attaches the program to one task-clock perf event per thread in `tids`, firing after
    /// every `period` of that thread's own CPU time: a thread that runs for `period` is
    /// sampled however many threads compete for the CPUs, and the program runs only on the
    /// watched threads. A thread that cannot get an event is listed in `failed`.
    pub fn attach_threads(&mut self, tids: &[u32], period: Duration) -> ThreadAttachment {
        // The kernel's hrtimer-driven software events need at least 10 us.
        let period_ns = u64::try_from(period.as_nanos())
            .unwrap_or(u64::MAX)
            .max(10_000);
        let mut out = ThreadAttachment::default();
        let program = match self.program_mut() {
            Ok(program) => program,
            Err(_) => {
                out.failed = tids
                    .iter()
                    .map(|&tid| {
                        (
                            tid,
                            EbpfError::ObjectMismatch {
                                kind: "program",
                                name: PROGRAM_NAME,
                            },
                        )
                    })
                    .collect();
                return out;
            }
        };
        for &tid in tids {
            match program.attach(
                PerfEventConfig::Software(SoftwareEvent::TaskClock),
                PerfEventScope::OneProcess {
                    pid: tid,
                    cpu: None,
                },
                SamplePolicy::Period(period_ns),
                false,
            ) {
                Ok(link) => {
                    out.attachment.links.push(link);
                    out.attached.push(tid);
                }
                Err(error) => out.failed.push((tid, EbpfError::from_program(error))),
            }
        }
        out
    }

    /// Detaches and closes the perf events of `attachment` (samples already emitted stay in
    /// the ring buffer).
    pub fn detach(&mut self, attachment: Attachment) {
        if attachment.links.is_empty() {
            return;
        }
        if let Ok(program) = self.program_mut() {
            for link in attachment.links {
                // Only fails for a link this program does not own, which cannot be built.
                let _ = program.detach(link);
            }
        }
    }

    /// Starts (or updates) sampling of every thread of process `tgid` with these slot rules.
    pub fn watch(&mut self, tgid: u32, params: &ProcessParams) -> Result<(), EbpfError> {
        let raw = params.to_raw()?;
        self.processes
            .insert(tgid, raw, 0)
            .map_err(|source| EbpfError::Map {
                map: MAP_PROCESSES,
                source,
            })
    }

    /// Stops sampling process `tgid` (samples already in the ring buffer still arrive).
    pub fn unwatch(&mut self, tgid: u32) -> Result<(), EbpfError> {
        match self.processes.remove(&tgid) {
            Ok(()) => Ok(()),
            Err(aya::maps::MapError::KeyNotFound) => Ok(()),
            Err(source) => Err(EbpfError::Map {
                map: MAP_PROCESSES,
                source,
            }),
        }
    }

    /// Throws away every sample waiting in the ring buffer; returns how many.
    pub fn discard_pending(&mut self) -> usize {
        let mut discarded = 0;
        while self.ring.next().is_some() {
            discarded += 1;
        }
        discarded
    }

    /// Parses every sample waiting in the ring buffer and hands it to `each`, in arrival order.
    pub fn drain(&mut self, mut each: impl FnMut(Sample)) -> Result<(), EbpfError> {
        while let Some(item) = self.ring.next() {
            let sample = Sample::parse(&item);
            drop(item);
            self.samples_received += 1;
            each(sample?);
        }
        Ok(())
    }

    /// Collects samples for up to `duration`, in arrival order. After each sample `stop` is
    /// called; when it returns true, collection ends at once (that sample included).
    pub fn collect(
        &mut self,
        duration: Duration,
        mut stop: impl FnMut(&Sample) -> bool,
    ) -> Result<Vec<Sample>, EbpfError> {
        let deadline = Instant::now() + duration;
        let mut samples = Vec::new();
        loop {
            while let Some(item) = self.ring.next() {
                let sample = Sample::parse(&item)?;
                drop(item);
                self.samples_received += 1;
                let done = stop(&sample);
                samples.push(sample);
                if done {
                    return Ok(samples);
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(samples);
            }
            std::thread::sleep((deadline - now).min(POLL_INTERVAL));
        }
    }

    /// Current counters; `run_count`/`run_time_ns` come from the kernel's program info.
    pub fn stats(&self) -> Result<Stats, EbpfError> {
        let mut drops = 0u64;
        for index in [CR_COUNTER_DROPPED, CR_COUNTER_SCRATCH_MISSING] {
            let per_cpu =
                self.counters
                    .get(&(index as u32), 0)
                    .map_err(|source| EbpfError::Map {
                        map: MAP_COUNTERS,
                        source,
                    })?;
            drops += per_cpu.iter().sum::<u64>();
        }
        let program: &PerfEvent = self
            .ebpf
            .program(PROGRAM_NAME)
            .ok_or(EbpfError::ObjectMismatch {
                kind: "program",
                name: PROGRAM_NAME,
            })?
            .try_into()
            .map_err(EbpfError::from_program)?;
        let info = program.info().map_err(EbpfError::from_program)?;
        Ok(Stats {
            samples: self.samples_received,
            drops,
            run_count: info.run_count(),
            run_time_ns: u64::try_from(info.run_time().as_nanos()).unwrap_or(u64::MAX),
            run_stats_enabled: self._run_stats.is_some(),
        })
    }
}
