"""A private virtualenv for a system whose library cannot share our environment (arq: redis-py < 6).

Made on demand outside the repository (REDISPOOL_BENCH_CACHE, default ~/.cache/redispool-bench) and
remade only when its requirements change.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CACHE = Path(os.environ.get("REDISPOOL_BENCH_CACHE", Path.home() / ".cache" / "redispool-bench"))


def ensure_venv(name: str, requirements: tuple[str, ...], log: Path) -> Path:
    """The venv's python, creating the venv and installing `requirements` first if needed."""
    venv = CACHE / name
    python = venv / "bin" / "python"
    stamp = venv / "bench-requirements.txt"
    wanted = "\n".join(requirements) + "\n"
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True, stdout=out, stderr=out)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *requirements], check=True, stdout=out,
                       stderr=out, timeout=600)
    stamp.write_text(wanted)
    return python
