//! `--churn` for the custom-labels target (the runner's rule, targets/README.md): every step of
//! worker w installs a fresh label set `churn.n = n`, `churn.n3 = 3n`, `churn.worker = w` with one
//! pointer swap (`custom_labels_replace`), so a stopped reader sees the old or the new set.

use custom_labels::sys;
use std::cell::Cell;
use std::ptr::null_mut;

thread_local! {
    /// The set the previous churn step installed (NULL before the first step); it is ours to free.
    static INSTALLED_BY_CHURN: Cell<*mut sys::Labelset> = const { Cell::new(null_mut()) };
}

/// Replaces the calling thread's label set with one derived from `worker` and `counter`.
pub fn step(worker: u64, counter: u64) {
    let count = counter.to_string();
    let triple = counter.wrapping_mul(3).to_string();
    let worker = worker.to_string();
    // SAFETY: `fresh` is a new set owned by this function until `replace` installs it; the set
    // `replace` returns is freed only if an earlier step created it (a churning thread starts
    // with no set). Only this thread touches its current set.
    unsafe {
        let fresh = sys::new(3);
        assert!(!fresh.is_null(), "custom_labels_new failed");
        let labels: [(&[u8], &[u8]); 3] = [
            (b"churn.n", count.as_bytes()),
            (b"churn.n3", triple.as_bytes()),
            (b"churn.worker", worker.as_bytes()),
        ];
        for (key, value) in labels {
            let errno = sys::set(fresh, key.into(), value.into(), null_mut());
            assert_eq!(errno, 0, "custom_labels_set failed");
        }
        let old = sys::replace(fresh);
        let ours = INSTALLED_BY_CHURN.with(|cell| cell.replace(fresh));
        if !ours.is_null() && old == ours {
            sys::free(old);
        }
    }
}
