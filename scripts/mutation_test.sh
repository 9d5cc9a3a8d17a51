#!/usr/bin/env bash
# Mutation testing of the core modules with mutmut 3 (a dev tool; not in CI: it takes hours on 2 cores).
#
#   .venv/bin/pip install mutmut            # once, into the dev venv only
#   bash scripts/mutation_test.sh           # all core modules
#   bash scripts/mutation_test.sh 'aesop_basicsr.losses.*' 'aesop_basicsr.models.esrgan_ldl_model.*'
#
# What is mutated and which (fast, in-process) tests run is configured in setup.cfg [mutmut]:
# losses/, archs/, models/, metrics/ and utils/checkpoint.py. mutmut copies the package and the tests
# into mutants/ (git-ignored) and reuses its earlier results there; delete mutants/ to start afresh.
# Prints the surviving mutants at the end; `.venv/bin/mutmut show <name>` shows one as a diff.
set -euo pipefail
cd "$(dirname "$0")/.."
MUTMUT=${MUTMUT:-.venv/bin/mutmut}
if [ ! -x "$MUTMUT" ]; then
    echo "mutmut is not installed: .venv/bin/pip install mutmut" >&2
    exit 1
fi
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1   # one thread per worker; workers run in parallel instead
"$MUTMUT" run --max-children "${MAX_CHILDREN:-2}" "$@" || true
echo
echo "== surviving mutants (mutmut show <name> for the diff) =="
"$MUTMUT" results --all false 2>/dev/null | grep -E ': (survived|no tests|timeout|suspicious)' || true
echo
echo "== score per module (killed / (killed + survived + no tests)) =="
.venv/bin/python scripts/mutation_score.py mutants
