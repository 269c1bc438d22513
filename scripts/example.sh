#!/usr/bin/env bash
# The main job on the example fleet: validate the policy repository, apply it (record a revision in the
# SQLite state file .policyhub/state.sqlite and push every cluster that differs into its GitOps folder
# under .policyhub/gitops/), then show each cluster's status and explain two decisions.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# the debug build that the test suite uses too (one build serves both README commands; a first release build
# of every dependency takes over 15 minutes on 2 cores): the example fleet is small
swift build --product policyhub
bin=.build/debug/policyhub
$bin validate
$bin apply
$bin status || [ $? -eq 2 ]   # 2 when a cluster is behind its desired revision (production waits for its first promotion: untouched, not behind)
$bin explain --cluster prod-eu-1 --target nv.node-pod.demo --process /usr/bin/nc
$bin explain --cluster prod-eu-1 --target nv.api.payments --peer external --port tcp/22 --app SSH --direction egress
$bin explain --admission --cluster staging-eu-1 --namespace payments --image docker.io/vendor/ledger:latest
