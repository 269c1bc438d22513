#!/usr/bin/env bash
# Installs what this project needs on a fresh Debian machine with Swift: the system C libraries the
# package links (libyaml now; libcurl and SQLite for the hub's push and store). Safe to run again.
set -euo pipefail
packages=(libyaml-dev libsqlite3-dev libcurl4-openssl-dev pkg-config)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q "${missing[@]}"
fi
command -v swift >/dev/null || { echo "setup: swift is not on PATH (expected Swift 6.3 at /opt/swift)" >&2; exit 1; }
