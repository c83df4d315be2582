#!/usr/bin/env bash
# atheris step: coverage-guided fuzzing of every entry point for a bounded
# time (ATHERIS_SECONDS, default 60), in the environment CI already set up
# (cyroi built in place, test extras installed). A failing input is saved
# under .ci-artifacts/atheris/ and the step fails.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1
pip install -q atheris
artifacts=.ci-artifacts/atheris
mkdir -p "$artifacts"
python -m fuzz.atheris_harness -max_total_time="${ATHERIS_SECONDS:-60}" \
    -rss_limit_mb=4096 -timeout=60 -max_len=2048 -artifact_prefix="$artifacts/" \
    -print_final_stats=1
