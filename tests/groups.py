"""The test files `make test` runs apart from the others. tests/conftest.py marks their
tests (`ray`, `background`) for `-m`; the Makefile names the files to pytest, so that each
run imports and collects only its own files (collecting every file costs ~15 s).
`python tests/groups.py ray` prints a group's files; `first` the other files, in the order
the first run gives them out."""

import sys
from pathlib import Path

# Files whose tests start, join or stop Ray clusters (`ray stop --force` stops every Ray
# process of the machine; a cluster starved of CPU by a neighbour misses its deadlines):
# run on their own, after the rest.
RAY = (
    "tests/cli/test_library.py", "tests/server/test_cluster.py", "tests/server/test_nodes.py",
    "tests/server/test_ray_parts.py", "tests/server/test_ray_private.py",
)  # fmt: skip

# Files of pure computation (compiling, training; no server, no port, no deadline): run at
# the lowest CPU priority beside the others, on the CPU time they leave idle (the Ray files
# wait on health checks and replicas).
BACKGROUND = (
    "tests/server/test_compiled.py", "tests/training/test_commands.py",
    "tests/training/test_pretrain.py", "tests/training/test_trainer.py",
)  # fmt: skip

GROUPS = {"ray": RAY, "background": BACKGROUND}

# The first run's longest files (a worker's seconds each, measured on two cores), handed to
# its three workers first: pytest-xdist gives out files in the order they are named, and a
# long file given out last keeps one worker busy while the others have nothing left (the
# workers ended 25-40 s apart in collection order). Every other file follows, by name.
LONGEST = (
    "tests/server/test_streams.py",  # 146 s
    "tests/benchmarks/test_smoke.py",  # 100 s
    "tests/server/test_web_page.py",  # 95 s
    "tests/server/test_fuzz.py",  # 53 s
    "tests/server/test_library.py",  # 51 s
    "tests/training/test_train.py",  # 50 s
    "tests/server/test_hardening.py",  # 46 s
    "tests/server/test_jobs.py",  # 35 s
)


def first() -> list[str]:
    """Every test file in neither group, the longest first."""
    root = Path(__file__).resolve().parents[1]
    found = sorted(p.relative_to(root).as_posix() for p in (root / "tests").rglob("test_*.py"))
    apart = set(RAY) | set(BACKGROUND) | set(LONGEST)
    return [*LONGEST, *(f for f in found if f not in apart)]


if __name__ == "__main__":
    print(" ".join(first() if sys.argv[1] == "first" else GROUPS[sys.argv[1]]))
