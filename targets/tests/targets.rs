//! Checks every catalogued variant against the kernel's view of it, independently of any reader:
//! the `CONTEXT-READY` pid is the child's pid, the expected threads are exactly `/proc/PID/task`
//! with the names in `comm`, the writer put its OTEP 4947 slot where the variant says (static vs
//! dynamic TLS), and the target exits 0 on stdin EOF.

use std::collections::BTreeMap;
use std::time::Duration;

use context_targets::{c_variants, RunningTarget, Variant};

fn proc_threads(pid: i32) -> BTreeMap<i64, String> {
    let mut threads = BTreeMap::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/task")).expect("read /proc/PID/task") {
        let entry = entry.expect("task entry");
        let tid: i64 = entry
            .file_name()
            .to_string_lossy()
            .parse()
            .expect("numeric tid");
        let comm = std::fs::read_to_string(entry.path().join("comm")).expect("comm");
        threads.insert(tid, comm.trim_end_matches('\n').to_string());
    }
    threads
}

fn check_variant(variant: &Variant, scenario: &str) -> Result<(), String> {
    let mut target = RunningTarget::spawn(variant.command(scenario, false))?;
    let ready = target.wait_ready(Duration::from_secs(20))?;
    let pid = target.pid();
    if ready.pid != pid || ready.expect["pid"] != pid {
        return Err(format!(
            "pid {} / expect.pid {} but the child is {pid}",
            ready.pid, ready.expect["pid"]
        ));
    }
    if ready.writer != variant.name {
        return Err(format!(
            "writer {:?}, variant {:?}",
            ready.writer, variant.name
        ));
    }
    let expected: BTreeMap<i64, String> = ready.expect["threads"]
        .as_array()
        .ok_or("expect.threads is not an array")?
        .iter()
        .map(|t| {
            (
                t["tid"].as_i64().unwrap_or(-1),
                t["name"].as_str().unwrap_or("?").to_string(),
            )
        })
        .collect();
    let tids: Vec<i64> = ready.expect["threads"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["tid"].as_i64())
        .collect();
    if !tids.windows(2).all(|w| w[0] < w[1]) {
        return Err(format!("threads not sorted by tid: {tids:?}"));
    }
    let actual = proc_threads(pid);
    if expected != actual {
        return Err(format!(
            "expect threads {expected:?}\n/proc threads  {actual:?}"
        ));
    }
    if let Some(block) = &variant.tls_block {
        let offset = ready.notes["v2_slot_tp_offset"]
            .as_i64()
            .ok_or("no notes.v2_slot_tp_offset")?;
        // Static TLS is within the thread's TCB area, a few KiB from TP; dynamic blocks are heap.
        let is_static = offset.unsigned_abs() < 64 * 1024;
        let wanted_static = block == "static";
        if is_static != wanted_static {
            return Err(format!(
                "slot at TP{offset:+}: wanted {block} TLS (notes {})",
                ready.notes
            ));
        }
    }
    let status = target.finish(Duration::from_secs(10))?;
    if !status.success() {
        return Err(format!("exit status {status}"));
    }
    Ok(())
}

#[test]
fn every_variant_speaks_the_protocol_and_lists_its_real_threads() {
    let variants = c_variants();
    assert!(variants.len() >= 40, "only {} C variants", variants.len());
    let failures: Vec<String> = variants
        .iter()
        .filter_map(|v| {
            assert!(
                v.executable.is_file(),
                "{}: {} missing",
                v.name,
                v.executable.display()
            );
            check_variant(v, "basic")
                .err()
                .map(|e| format!("{}: {e}", v.name))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} variant(s) wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn many_threads_lists_hundreds_of_threads_and_churn_workers_are_described() {
    let variant = c_variants()
        .into_iter()
        .find(|v| v.name == "c-glibc-pie-exe-le")
        .expect("base variant");
    check_variant(&variant, "many-threads").expect("many-threads");
    let mut target = RunningTarget::spawn(variant.command("churn", false)).expect("spawn");
    let ready = target.wait_ready(Duration::from_secs(20)).expect("ready");
    let churners = ready.expect["threads"]
        .as_array()
        .expect("threads")
        .iter()
        .filter(|t| t.get("churn").is_some() && t.get("v1").is_none() && t.get("v2").is_none())
        .count();
    assert_eq!(
        churners, 4,
        "four churning workers described by form only: {}",
        ready.expect
    );
    assert!(target
        .finish(Duration::from_secs(10))
        .expect("exit")
        .success());
}

#[test]
fn forced_dynamic_tls_variants_really_exhausted_static_tls() {
    for v in c_variants().iter().filter(|v| v.name.ends_with("-filler")) {
        let mut target = RunningTarget::spawn(v.command("basic", false)).expect("spawn");
        let ready = target.wait_ready(Duration::from_secs(20)).expect("ready");
        assert_eq!(
            ready.notes["static_tls_exhausted"], true,
            "{}: {}",
            v.name, ready.notes
        );
        assert!(
            ready.notes["fillers_loaded"].as_i64().unwrap_or(0) > 0,
            "{}: {}",
            v.name,
            ready.notes
        );
    }
}
