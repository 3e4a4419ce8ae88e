//! Where things are: the workspace root, cargo's target directory and the xtask download cache.

use std::path::PathBuf;

pub struct Paths {
    pub workspace: PathBuf,
    /// `CARGO_TARGET_DIR` when set, else `<workspace>/target`.
    pub target: PathBuf,
    /// Downloads and built initramfs archives (never committed: it is under the target dir).
    pub cache: PathBuf,
}

impl Paths {
    pub fn discover() -> Paths {
        let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("xtask lives in the workspace")
            .to_path_buf();
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace.join("target"));
        let target = if target.is_relative() {
            workspace.join(target)
        } else {
            target
        };
        // XTASK_CACHE lets the VM runner (started by the cross cargo) find the same cache.
        let cache = std::env::var_os("XTASK_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|| target.join("xtask-cache"));
        Paths {
            workspace,
            target,
            cache,
        }
    }
}
