#!/usr/bin/env bash
# Training throughput of a tiny model and the dual loss's cost over plain cross-entropy (docs/benchmarks/train.md).
set -euo pipefail
cd "$(dirname "$0")/.."
stepkit bench train "$@"
