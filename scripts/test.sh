#!/usr/bin/env bash
# The whole test suite, from a clean clone.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
swift build --build-tests
swift test --skip-build
