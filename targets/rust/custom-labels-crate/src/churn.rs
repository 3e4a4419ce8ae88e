//! `--churn` for the custom-labels target: every step installs a fresh label set derived from
//! the counter (`churn.counter` = N, `churn.double` = 2N, decimal) with one pointer swap
//! (`custom_labels_replace`), so a stopped reader sees either the old or the new set, never a mix.

use custom_labels::sys;
use std::cell::Cell;
use std::ptr::null_mut;

thread_local! {
    /// The set the previous churn step installed (NULL before the first step); it is ours to free.
    static INSTALLED_BY_CHURN: Cell<*mut sys::Labelset> = const { Cell::new(null_mut()) };
}

/// Replaces the calling thread's label set with one derived from `counter`.
pub fn step(counter: u64) {
    let count = counter.to_string();
    let double = counter.wrapping_mul(2).to_string();
    // SAFETY: `fresh` is a new set owned by this function until `replace` installs it; the set
    // `replace` returns is freed only if an earlier step created it (the scenario's own set stays
    // owned by the crate's Labelset/with_labels guard, which never runs because the thread never
    // leaves its scope). Only this thread touches its current set.
    unsafe {
        let fresh = sys::new(2);
        assert!(!fresh.is_null(), "custom_labels_new failed");
        for (key, value) in [
            ("churn.counter".as_bytes(), count.as_bytes()),
            (b"churn.double", double.as_bytes()),
        ] {
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
