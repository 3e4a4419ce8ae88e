#!/usr/bin/env bash
# The aarch64 leg alone: setup (cross toolchains, Debian rustc-web, qemu 10, guest kernel), the
# vm-smoke check, then `cargo test --target aarch64-unknown-linux-gnu` with one qemu-system VM per
# test binary (runner: `xtask vm-run`, code in xtask/src/guest.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo xtask test --arch aarch64
