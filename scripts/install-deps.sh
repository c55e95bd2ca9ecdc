#!/usr/bin/env bash
# Installs the system packages the project builds and tests against, if any are missing
# (Debian 12 / Ubuntu 22.04+): FFmpeg's libraries and headers, clang for bindgen and the ffmpeg
# CLI (tests generate clips with it). With --gpu, also the Vulkan loader and Mesa's Vulkan
# drivers, for the `gpu` build (its software adapter lets wgpu run on a machine without a GPU).
# With --arm, also the aarch64 cross linker and qemu-user, and Rust's aarch64 target, for
# testing the NEON kernels on an x86-64 machine (.cargo/config.toml runs the tests in qemu).
set -euo pipefail
packages=(
  pkg-config clang libclang-dev
  libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libavfilter-dev libavdevice-dev
  ffmpeg
)
arm=false
for flag in "$@"; do
  case "$flag" in
    --gpu) packages+=(libvulkan1 mesa-vulkan-drivers) ;;
    --arm) packages+=(qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross); arm=true ;;
    *) echo "usage: $0 [--gpu] [--arm]" >&2; exit 2 ;;
  esac
done
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
command -v cargo >/dev/null || {
  echo "cargo not found: install Rust 1.95+ from https://rustup.rs first" >&2
  exit 1
}
if $arm && ! rustup target list --installed 2>/dev/null | grep -q '^aarch64-unknown-linux-gnu$'; then
  command -v rustup >/dev/null || {
    echo "--arm needs rustup to add Rust's aarch64 target (https://rustup.rs)" >&2
    exit 1
  }
  rustup target add aarch64-unknown-linux-gnu
fi
