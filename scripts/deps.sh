#!/usr/bin/env bash
# Install the Debian packages healthreg needs to build, test and demo,
# only those that are missing. A no-op when everything is present.
set -euo pipefail

PKGS=(build-essential cmake pkg-config python3
      libcurl4-openssl-dev libcjson-dev libev-dev libcriterion-dev
      libmicrohttpd-dev etcd-server etcd-client
      clang libclang-rt-dev valgrind
      man-db groff-base curl python3-grpcio openssl
      golang-go golang-etcd-server-dev golang-google-grpc-dev)
# clang and libclang-rt-dev (the libFuzzer, ASan and UBSan runtimes, only
# recommended by clang, and installs here skip recommends): tests/fuzz and
# scripts/fuzz.sh. valgrind: scripts/valgrind.sh. man-db, groff-base:
# test_install renders the man pages with `man -l --warnings`. curl:
# scripts/demo.sh shows the agent's API with it. python3-grpcio (for
# /usr/bin/python3) and openssl: the real gRPC server and the certificates
# of tests/integration/test_grpc_check.py and of the TLS tests
# (tests/support/tlskit.py). golang-go and the two Go source
# packages: the real gRPC client of etcd's resolver, built offline by
# tests/support/gobuild.py (tests/integration/test_grpc_resolver.py).
if [ "${HR_DEPS_EXTRA:-}" ]; then
	read -r -a extra <<<"$HR_DEPS_EXTRA"
	PKGS+=("${extra[@]}")
fi

missing=()
for p in "${PKGS[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing+=("$p")
	fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}" >&2
SUDO=
if [ "$(id -u)" != 0 ]; then
	SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The etcd-server package may start a system etcd on 2379; the tests use
# their own ports, but do not leave an unexpected daemon behind.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet etcd 2>/dev/null; then
	$SUDO systemctl stop etcd || true
fi
