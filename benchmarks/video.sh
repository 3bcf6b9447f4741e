#!/usr/bin/env bash
# Time full decoding, 8-frame sampling and scene splitting with stepkit.video.
set -euo pipefail
cd "$(dirname "$0")/.."
stepkit bench video "$@"
