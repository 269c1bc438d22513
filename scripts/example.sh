#!/usr/bin/env bash
# The main job on the example fleet: validate the policy repository, render every cluster's effective
# policy into its GitOps folder layout, and explain two decisions.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
swift build -c release --product policyhub
bin=.build/release/policyhub
$bin validate
$bin render --out-dir .policyhub/render
$bin explain --cluster prod-eu-1 --target nv.node-pod.demo --process /usr/bin/nc
$bin explain --cluster prod-eu-1 --target nv.api.payments --peer external --port tcp/22 --app SSH --direction egress
