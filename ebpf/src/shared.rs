//! One loaded sampler per process, shared by every reading session: the program is verified
//! once, and each session [`SharedSampler::watch`]es its process with its own perf events.
//!
//! Several watches may be active at once, from several threads and for several processes (or
//! the same one): the `processes` map holds every watched tgid, the ring buffer is drained by
//! whichever watch collects, and each sample goes to the queue of every watch of its tgid.
//! Samples of a tgid nobody watches (left over from an ended watch) are dropped, so a new watch
//! starts from a clean queue. One mutex guards the sampler; it is held only to drain the ring
//! buffer, update the maps and attach or detach events, never while a caller sleeps.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::error::EbpfError;
use crate::rules::ProcessParams;
use crate::sample::Sample;
use crate::sampler::{Attachment, Sampler, Stats};

/// How long [`Watch::collect`] sleeps when its queue is empty.
const POLL_INTERVAL: Duration = Duration::from_millis(5);

/// What fires the program for a watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// One task-clock event per thread in `tids`, firing after every `period` of that thread's
    /// CPU time (see [`Sampler::attach_threads`]). If some thread cannot get an event for
    /// another reason than having exited (e.g. no file descriptors left), per-CPU cpu-clock
    /// events at `fallback_hz` are attached as well, so that those threads can still be seen.
    Threads {
        tids: Vec<u32>,
        period: Duration,
        fallback_hz: u64,
    },
    /// One cpu-clock event per online CPU (see [`Sampler::attach_cpus`]).
    Cpus { frequency_hz: u64 },
}

struct WatcherState {
    tgid: u32,
    queue: Vec<Sample>,
}

struct State {
    sampler: Sampler,
    watchers: BTreeMap<u64, WatcherState>,
    next_id: u64,
}

impl State {
    /// Moves every sample waiting in the ring buffer to the queues of the watches of its tgid.
    fn drain(&mut self) -> Result<(), EbpfError> {
        let watchers = &mut self.watchers;
        self.sampler.drain(|sample| {
            let mut targets = watchers.values_mut().filter(|w| w.tgid == sample.tgid);
            if let Some(first) = targets.next() {
                for other in targets {
                    other.queue.push(sample.clone());
                }
                first.queue.push(sample);
            }
        })
    }
}

/// A loaded sampler behind a mutex; see the module documentation.
pub struct SharedSampler {
    state: Mutex<State>,
    /// How long loading (and verifying) the program took.
    load_time: Duration,
}

impl std::fmt::Debug for SharedSampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedSampler")
            .field("load_time", &self.load_time)
            .finish_non_exhaustive()
    }
}

static GLOBAL: Mutex<Option<Arc<SharedSampler>>> = Mutex::new(None);

/// A poisoned lock only means another thread panicked while holding it; the sampler's state
/// is still consistent (every update is a single map operation or a queue push).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl SharedSampler {
    /// Loads the program (unattached) into a new shared sampler.
    pub fn load() -> Result<SharedSampler, EbpfError> {
        let started = Instant::now();
        let sampler = Sampler::load_unattached()?;
        Ok(SharedSampler {
            state: Mutex::new(State {
                sampler,
                watchers: BTreeMap::new(),
                next_id: 0,
            }),
            load_time: started.elapsed(),
        })
    }

    /// The process-wide sampler, loaded by the first caller (others wait for that load and
    /// then share it). A failed load is not remembered: the next call tries again.
    pub fn global() -> Result<Arc<SharedSampler>, EbpfError> {
        let mut global = lock(&GLOBAL);
        if let Some(shared) = global.as_ref() {
            return Ok(Arc::clone(shared));
        }
        let shared = Arc::new(SharedSampler::load()?);
        *global = Some(Arc::clone(&shared));
        Ok(shared)
    }

    /// Whether [`SharedSampler::global`] has a loaded sampler already (the next call is cheap).
    pub fn global_is_loaded() -> bool {
        lock(&GLOBAL).is_some()
    }

    /// How long loading and verifying the program took.
    pub fn load_time(&self) -> Duration {
        self.load_time
    }

    /// Starts sampling process `tgid` with these slot rules, fired by `trigger`. The watch ends
    /// (events detached, tgid unwatched unless another watch has it) when it is dropped.
    pub fn watch(
        self: &Arc<Self>,
        tgid: u32,
        params: &ProcessParams,
        trigger: &Trigger,
    ) -> Result<Watch, EbpfError> {
        let mut state = lock(&self.state);
        // Whatever is in the ring buffer now was emitted before this watch: not for it.
        state.drain()?;
        state.sampler.watch(tgid, params)?;
        let id = state.next_id;
        state.next_id += 1;
        state.watchers.insert(
            id,
            WatcherState {
                tgid,
                queue: Vec::new(),
            },
        );
        let mut watch = Watch {
            shared: Arc::clone(self),
            id,
            tgid,
            attachment: Attachment::default(),
            threads_attached: 0,
            threads_failed: Vec::new(),
            cpu_fallback: false,
        };
        let attached = match trigger {
            Trigger::Cpus { frequency_hz } => state.sampler.attach_cpus(*frequency_hz),
            Trigger::Threads {
                tids,
                period,
                fallback_hz,
            } => {
                let threads = state.sampler.attach_threads(tids, *period);
                let fallback = threads.needs_fallback();
                watch.attachment.merge(threads.attachment);
                watch.threads_attached = threads.attached.len();
                watch.threads_failed = threads.failed;
                if fallback {
                    watch.cpu_fallback = true;
                    state.sampler.attach_cpus(*fallback_hz)
                } else {
                    Ok(Attachment::default())
                }
            }
        };
        drop(state);
        // On error, dropping `watch` detaches what was attached and unwatches the tgid.
        watch.attachment.merge(attached?);
        Ok(watch)
    }

    /// The kernel counters of the shared program (all watches together).
    pub fn stats(&self) -> Result<Stats, EbpfError> {
        lock(&self.state).sampler.stats()
    }
}

/// One process watched through a [`SharedSampler`]; dropping it ends the watch.
pub struct Watch {
    shared: Arc<SharedSampler>,
    id: u64,
    tgid: u32,
    attachment: Attachment,
    threads_attached: usize,
    threads_failed: Vec<(u32, EbpfError)>,
    cpu_fallback: bool,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("tgid", &self.tgid)
            .field("events", &self.attachment.len())
            .field("threads_attached", &self.threads_attached)
            .field("threads_failed", &self.threads_failed.len())
            .field("cpu_fallback", &self.cpu_fallback)
            .finish()
    }
}

impl Watch {
    /// The watched process.
    pub fn tgid(&self) -> u32 {
        self.tgid
    }

    /// Threads that got their own perf event ([`Trigger::Threads`]).
    pub fn threads_attached(&self) -> usize {
        self.threads_attached
    }

    /// Threads that did not get their own event, and why.
    pub fn threads_failed(&self) -> &[(u32, EbpfError)] {
        &self.threads_failed
    }

    /// Whether per-CPU events were attached because some threads could not get their own.
    pub fn cpu_fallback(&self) -> bool {
        self.cpu_fallback
    }

    /// The shared sampler this watch belongs to.
    pub fn sampler(&self) -> &Arc<SharedSampler> {
        &self.shared
    }

    /// Collects this watch's samples for up to `duration`, in arrival order. After each sample
    /// `stop` is called; when it returns true, collection ends at once (that sample included;
    /// later samples stay queued for the next call).
    pub fn collect(
        &mut self,
        duration: Duration,
        mut stop: impl FnMut(&Sample) -> bool,
    ) -> Result<Vec<Sample>, EbpfError> {
        let deadline = Instant::now() + duration;
        let mut samples = Vec::new();
        loop {
            let batch = {
                let mut state = lock(&self.shared.state);
                state.drain()?;
                let queue = &mut state
                    .watchers
                    .get_mut(&self.id)
                    .expect("a live watch is registered")
                    .queue;
                std::mem::take(queue)
            };
            let mut batch = batch.into_iter();
            while let Some(sample) = batch.next() {
                let done = stop(&sample);
                samples.push(sample);
                if done {
                    let rest: Vec<Sample> = batch.collect();
                    if !rest.is_empty() {
                        let mut state = lock(&self.shared.state);
                        let queue = &mut state
                            .watchers
                            .get_mut(&self.id)
                            .expect("a live watch is registered")
                            .queue;
                        queue.splice(0..0, rest);
                    }
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
}

impl Drop for Watch {
    fn drop(&mut self) {
        let mut state = lock(&self.shared.state);
        let attachment = std::mem::take(&mut self.attachment);
        state.sampler.detach(attachment);
        state.watchers.remove(&self.id);
        if !state.watchers.values().any(|w| w.tgid == self.tgid) {
            // Best effort: a failure leaves the tgid in the map, which only costs the program
            // a lookup hit on that process's ticks until the next watch of it.
            let _ = state.sampler.unwatch(self.tgid);
        }
        // Samples of this watch still in the ring buffer go nowhere (or to another watch of
        // the same tgid).
        let _ = state.drain();
    }
}
