"""Mutation score per module from mutmut 3's result files (``mutants/**/*.py.meta``).

    python scripts/mutation_score.py mutants                     # one run
    python scripts/mutation_score.py OLD/mutants NEW/mutants     # two runs, on the mutants both have checked

Score = killed / (killed + survived + no tests); timeouts count as killed (the mutant hangs the tests).
"""
import glob
import json
import os
import sys
from collections import Counter, defaultdict
from typing import Dict, Optional

STATUS = {1: 'killed', 3: 'killed', 0: 'survived', 5: 'no tests', 33: 'no tests', 34: 'skipped',
          36: 'timeout', 37: 'killed', -24: 'timeout', 24: 'timeout', 152: 'timeout', 255: 'timeout',
          -11: 'segfault', -9: 'segfault'}


def read_results(root: str) -> Dict[str, Optional[str]]:
    """mutant name -> status (None: not checked yet)."""
    results = {}
    for meta in glob.glob(os.path.join(root, '**', '*.py.meta'), recursive=True):
        with open(meta) as f:
            for name, code in json.load(f).get('exit_code_by_key', {}).items():
                results[name] = None if code is None else STATUS.get(code, 'suspicious')
    return results


def module_of(mutant: str) -> str:
    return mutant.split('.x')[0]  # aesop_basicsr.losses.aesop_loss.xǁAESOPLossǁforward__mutmut_3


def score(statuses) -> str:
    counts = Counter(statuses)
    killed = counts['killed'] + counts['timeout'] + counts['segfault']
    judged = killed + counts['survived'] + counts['no tests']
    pct = f'{100 * killed / judged:5.1f}%' if judged else '   - '
    return (f'{pct}  killed {killed:4d}  survived {counts["survived"]:4d}  no tests {counts["no tests"]:4d}'
            f'  (timeouts {counts["timeout"]})')


def main(argv) -> None:
    runs = [read_results(root) for root in argv[1:]]
    if not runs:
        raise SystemExit(__doc__)
    names = set.intersection(*({n for n, s in run.items() if s is not None} for run in runs))
    by_module = defaultdict(list)
    for name in sorted(names):
        by_module[module_of(name)].append(name)
    total = {n: len(run) for n, run in enumerate(runs)}
    print(f'{len(names)} mutants checked in every run (of {", ".join(str(t) for t in total.values())} generated)')
    for module, mutants in sorted(by_module.items()):
        print(module)
        for label, run in zip(argv[1:], runs):
            print(f'    {score(run[m] for m in mutants)}   {label}')
    print('all')
    for label, run in zip(argv[1:], runs):
        print(f'    {score(run[m] for m in names)}   {label}')


if __name__ == '__main__':
    main(sys.argv)
