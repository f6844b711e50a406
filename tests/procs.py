"""The processes a command started, from /proc (Linux): for tests and benchmarks that
look at a whole tree (a trainer and its loader workers, a Ray node and its servers); and a
process that answers a test's questions (`Asker`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any


def process_tree(root: int) -> list[int]:
    """`root` and every process descended from it, alive now."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


class Asker:
    """A Python process of its own that answers questions over its pipes: a line in, a line
    out. The script prints each answer as `ANSWER <json>`; whatever else it prints before
    is skipped. Started once and asked many times: a start costs seconds of imports, a
    question milliseconds."""

    def __init__(self, script: str, *args: str, cwd: Path) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", script, *args], cwd=cwd,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)  # fmt: skip

    def ask(self, question: str = "") -> Any:
        """`question` (one line) -> the script's answer, decoded from JSON."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(question + "\n")
        self.proc.stdin.flush()
        for line in self.proc.stdout:
            if line.startswith("ANSWER "):
                return json.loads(line.removeprefix("ANSWER "))
        raise AssertionError(f"the process exited ({self.proc.wait()})")

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()
