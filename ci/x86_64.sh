#!/usr/bin/env bash
# The x86-64 leg alone: setup, fmt, clippy, cargo test (conformance with ptrace and eBPF).
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo xtask test --arch x86_64
