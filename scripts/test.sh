#!/usr/bin/env bash
# The whole test suite, from a clean clone.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
swift build --build-tests
# pushes to the API double read back at once; the tests of NeuVector's late rejections set their own settle time
export POLICYHUB_SETTLE="${POLICYHUB_SETTLE:-0}"
# one throwaway PostgreSQL server on loopback for the store's tests (each test makes a database of its own),
# stopped when the run ends however it ends
eval "$(bash scripts/postgres.sh start)"
trap 'bash scripts/postgres.sh stop "$POLICYHUB_TEST_POSTGRES_DIR"' EXIT
swift test --skip-build
