#!/usr/bin/env bash
# deploy/setup.sh — installs every Debian package anylb needs to build, test
# and run. Idempotent: when everything is present it only says so. Needs root
# (or sudo) to install; never touches anything but Debian's package archive.
set -euo pipefail

# One group per need; keep in step with third_party/system.BUILD.
PACKAGES=(
  # Build: Bazel (offline), compilers, BPF toolchain.
  bazel-bootstrap g++ clang llvm libclang-rt-14-dev pkg-config linux-libc-dev
  # gRPC and Protocol Buffers (protoc and grpc_cpp_plugin run in genrules).
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc
  # abseil, tests and benchmarks.
  libabsl-dev libgtest-dev libgmock-dev libbenchmark-dev
  # AF_XDP dataplane and BPF.
  libxdp-dev libbpf-dev xdp-tools bpftool
  # Netlink, controller store, TLS, lbnode's config file and /metrics.
  libmnl-dev libsqlite3-dev libssl-dev libyaml-cpp-dev libcpp-httplib-dev
  # Health checks: RE2 (HTTP body_regex).
  libre2-dev
  # openssl(1): deploy/make-certs.sh (trial CA, controller TLS, node mTLS).
  openssl
  # Integration tests and benchmarks: namespaces, real HTTP servers and
  # clients, nftables (the DNAT baseline), trafgen (netsniff-ng), ethtool
  # (checksum offload off on veth endpoints whose frames cross AF_XDP).
  iproute2 ethtool nginx-light curl nftables netsniff-ng
  # Routing: FRRouting (zebra, bgpd, ospfd, bfdd, vtysh; frr-reload.py) for
  # VIP announcement and the FPM feed, in tests and in the lab.
  frr frr-pythontools
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [[ $status == "install ok installed" ]] || missing+=("$pkg")
done

if ((${#missing[@]} == 0)); then
  echo "setup: all ${#PACKAGES[@]} Debian packages present"
  exit 0
fi

SUDO=()
if ((EUID != 0)); then
  if command -v sudo >/dev/null; then
    SUDO=(sudo)
  else
    echo "setup: missing packages: ${missing[*]}" >&2
    echo "setup: run this script as root (or install sudo) to install them" >&2
    exit 1
  fi
fi

echo "setup: installing ${#missing[@]} Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp /tmp/anylb-setup.XXXXXX.log)
if ! "${SUDO[@]}" apt-get update -q >"$log" 2>&1; then
  echo "setup: apt-get update failed; its output is in $log" >&2
  tail -20 "$log" >&2
  exit 1
fi
if ! "${SUDO[@]}" apt-get install -y -q "${missing[@]}" >>"$log" 2>&1; then
  echo "setup: apt-get install failed; its output is in $log" >&2
  tail -20 "$log" >&2
  exit 1
fi
rm -f "$log"
echo "setup: installed ${missing[*]}"
