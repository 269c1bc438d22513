#!/usr/bin/env bash
# Installs what this project needs on a fresh Debian machine with Swift: the system C libraries the
# package links (libyaml, libcurl with OpenSSL, SQLite), kubectl (tests read back what the hub pushed) and the
# curl command (a test talks HTTP/1.1 to the API double that offers HTTP/2), and git, gpg and ssh-keygen (revisions
# record their commit and its signature, checked with the system tools), and python3-jsonschema (a test checks
# the SARIF log against its schema), and Debian's PostgreSQL server (the store's tests run on a throwaway one,
# scripts/postgres.sh).
# The tests' throwaway certificates are made in Swift (apple/swift-certificates), not with openssl.
# Safe to run again; installs only what is missing.
set -euo pipefail
packages=(libyaml-dev libsqlite3-dev libcurl4-openssl-dev pkg-config curl git gnupg openssh-client python3-jsonschema postgresql)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
command -v kubectl >/dev/null 2>&1 || missing+=(kubectl)
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q "${missing[@]}" || {
    # kubectl comes from Kubernetes' own apt repository where one is configured, else Debian's client
    apt-get install -y -q "${missing[@]/kubectl/kubernetes-client}"
  }
fi
command -v swift >/dev/null || { echo "setup: swift is not on PATH (expected Swift 6.3 at /opt/swift)" >&2; exit 1; }
