#!/usr/bin/env bash
# The main job on the example fleet: validate the policy repository, apply it (record a revision in the
# SQLite state file .policyhub/state.sqlite and push every cluster that differs into its GitOps folder
# under .policyhub/gitops/), then show each cluster's status and explain two decisions.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
swift build -c release --product policyhub
bin=.build/release/policyhub
$bin validate
$bin apply
$bin status || [ $? -eq 2 ]   # 2 when a cluster is behind its desired revision (production waits for its first promotion: untouched, not behind)
$bin explain --cluster prod-eu-1 --target nv.node-pod.demo --process /usr/bin/nc
$bin explain --cluster prod-eu-1 --target nv.api.payments --peer external --port tcp/22 --app SSH --direction egress
$bin explain --admission --cluster staging-eu-1 --namespace payments --image docker.io/vendor/ledger:latest
