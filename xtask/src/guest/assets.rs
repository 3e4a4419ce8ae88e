//! The guest's kernel and busybox, from Debian's arm64 archive, extracted into the cache.

use crate::process::{output, run};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Kernel and busybox extracted from their arm64 packages.
pub struct Assets {
    pub kernel: PathBuf,
    pub busybox: PathBuf,
}

pub(super) fn guest_dir(cache: &Path) -> PathBuf {
    cache.join("aarch64-guest")
}

/// The concrete kernel package that `linux-image-cloud-arm64` depends on, from
/// `apt-cache depends` output.
pub fn kernel_package_from_depends(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let name = line
            .trim()
            .trim_start_matches('|')
            .strip_prefix("Depends:")?
            .trim();
        let name = name.strip_suffix(":arm64").unwrap_or(name);
        name.starts_with("linux-image-").then(|| name.to_string())
    })
}

/// Downloads `package` (an arm64 package) and extracts the members matching `pattern` into `dest`.
fn download_and_extract(package: &str, pattern: &str, dest: &Path) -> Result<()> {
    let work = dest.join("download");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    run(Command::new("apt-get")
        .args([
            "download",
            "-q",
            "-o",
            "APT::Sandbox::User=root",
            &format!("{package}:arm64"),
        ])
        .current_dir(&work))?;
    let deb = std::fs::read_dir(&work)?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .with_context(|| format!("apt-get download {package} left no .deb"))?;
    let tar = work.join("data.tar");
    let tar_file = std::fs::File::create(&tar)?;
    run(Command::new("dpkg-deb")
        .arg("--fsys-tarfile")
        .arg(&deb)
        .stdout(tar_file))?;
    run(Command::new("tar")
        .arg("-xf")
        .arg(&tar)
        .arg("-C")
        .arg(&work)
        .args(["--wildcards", pattern]))?;
    Ok(())
}

fn find_one(dir: &Path, prefix: &str) -> Result<PathBuf> {
    std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
        })
        .with_context(|| format!("no {prefix}* in {}", dir.display()))
}

/// Fetches the guest kernel and busybox unless the current versions are already cached, and
/// records their paths for [`assets`].
pub fn fetch_assets(cache: &Path) -> Result<Assets> {
    let root = guest_dir(cache);
    let depends =
        output(Command::new("apt-cache").args(["depends", "linux-image-cloud-arm64:arm64"]))?;
    let kernel_package = kernel_package_from_depends(&depends)
        .with_context(|| format!("cannot find the kernel package in `apt-cache depends linux-image-cloud-arm64:arm64`:\n{depends}"))?;
    let kernel_dir = root.join(&kernel_package);
    let kernel = kernel_dir.join("vmlinuz");
    if !kernel.is_file() {
        download_and_extract(&kernel_package, "./boot/vmlinuz-*", &kernel_dir)?;
        std::fs::rename(
            find_one(&kernel_dir.join("download/boot"), "vmlinuz-")?,
            &kernel,
        )?;
        std::fs::remove_dir_all(kernel_dir.join("download"))?;
    }
    let show = output(Command::new("apt-cache").args([
        "show",
        "--no-all-versions",
        "busybox-static:arm64",
    ]))?;
    let busybox_version = show
        .lines()
        .find_map(|l| l.strip_prefix("Version: "))
        .context("busybox-static:arm64 has no Version")?
        .to_string();
    let busybox_dir = root.join(format!(
        "busybox-static-{}",
        busybox_version.replace(':', "_")
    ));
    let busybox = busybox_dir.join("busybox");
    if !busybox.is_file() {
        download_and_extract("busybox-static", "./bin/busybox", &busybox_dir)?;
        std::fs::rename(busybox_dir.join("download/bin/busybox"), &busybox)?;
        std::fs::remove_dir_all(busybox_dir.join("download"))?;
    }
    std::fs::write(
        root.join("current"),
        format!("{}\n{}\n", kernel.display(), busybox.display()),
    )?;
    eprintln!(
        "xtask setup: aarch64 guest kernel {} and busybox {busybox_version}",
        kernel_package
    );
    Ok(Assets { kernel, busybox })
}

/// The assets recorded by the last [`fetch_assets`].
pub fn assets(cache: &Path) -> Result<Assets> {
    let recorded = guest_dir(cache).join("current");
    let text = std::fs::read_to_string(&recorded).with_context(|| {
        format!(
            "{} is missing: run `cargo xtask setup --arch aarch64` first",
            recorded.display()
        )
    })?;
    let mut lines = text.lines().map(PathBuf::from);
    let (Some(kernel), Some(busybox)) = (lines.next(), lines.next()) else {
        bail!("{} is malformed", recorded.display())
    };
    for path in [&kernel, &busybox] {
        if !path.is_file() {
            bail!(
                "{} is missing: run `cargo xtask setup --arch aarch64`",
                path.display()
            );
        }
    }
    Ok(Assets { kernel, busybox })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_concrete_kernel_package() {
        let text =
            "linux-image-cloud-arm64:arm64\n  Depends: linux-image-6.1.0-57-cloud-arm64:arm64\n";
        assert_eq!(
            kernel_package_from_depends(text).as_deref(),
            Some("linux-image-6.1.0-57-cloud-arm64")
        );
        assert_eq!(
            kernel_package_from_depends("linux-image-cloud-arm64:arm64\n"),
            None
        );
    }
}
