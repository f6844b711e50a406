"""The test files `make test` runs apart from the others. tests/conftest.py marks their
tests (`ray`, `background`) for `-m`; the Makefile names the files to pytest, so that each
run imports and collects only its own files (collecting every file costs ~15 s).
`python tests/groups.py ray` prints a group's files."""

import sys

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

if __name__ == "__main__":
    print(" ".join(GROUPS[sys.argv[1]]))
