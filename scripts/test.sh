#!/usr/bin/env bash
# The whole test suite, from a clean clone.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
swift build --build-tests
# pushes to the API double read back at once; the tests of NeuVector's late rejections set their own settle time
export POLICYHUB_SETTLE="${POLICYHUB_SETTLE:-0}"
swift test --skip-build
