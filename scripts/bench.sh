#!/usr/bin/env bash
# Every benchmark, on a release build, each against its reference measured in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# wrk drives the references; Debian's nginx-light answering fixed responses is the floor of the push
{ command -v wrk && { command -v nginx || test -x /usr/sbin/nginx; }; } >/dev/null 2>&1 \
  || { apt-get update -q && apt-get install -y -q wrk nginx-light; }
swift build -c release --product policyhub-bench
swift build -c release --product policyhub   # bench watch starts the daemon binary
bin=.build/release/policyhub-bench
$bin parse --runs 9
$bin fleet --runs 5
$bin conflicts --runs 3
$bin push --clusters 1000 --drift-runs 7 2>&1 | grep -v '^\['
$bin promote --runs 5
$bin serve 2>&1 | grep -v '^\['
$bin watch --clusters 1000 2>&1 | grep -v '^\['
$bin follow --clusters 1000 --runs 3
bash scripts/bench-git.sh 20000 200
