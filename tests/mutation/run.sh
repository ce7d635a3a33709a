#!/usr/bin/env bash
# Mutation testing of the contract modules (mutmut 3), one module at a time, one child process.
#   tests/mutation/run.sh                  every module in tests/mutation/modules.toml (~30 min on 2 cores)
#   tests/mutation/run.sh --sample         the TF-free modules only (a few minutes; what .ci/run may call)
#   tests/mutation/run.sh edge/core/metrics.py --min-score 90
# Scratch copies go to $TMPDIR/edge-mutation (override with --work DIR); nothing is written to the repository.
set -euo pipefail
cd "$(dirname "$0")/../.."
python -c "import mutmut" 2>/dev/null || { echo "error: mutmut is not installed (pip install 'mutmut>=3.3,<4')" >&2; exit 2; }
export EDGE_DATA_DIR="${EDGE_DATA_DIR:-/work/shared/data}"
exec python tests/mutation/run.py "$@"
