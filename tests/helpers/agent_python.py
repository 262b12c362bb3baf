"""The oldest Python the agent-side installer claims to run on, to run its tests under.

DC/OS agents run the installer with `/opt/mesosphere/bin/python3`, CPython 3.6 on every
supported release (dcos/dcos `packages/python/buildinfo.json`; see calico_dcos.matrix), while
the project itself is built on Python >= 3.11. Testing the installer on the newer Python
proved nothing about the agents: a `from __future__ import annotations` passed every test and
was a SyntaxError on every agent. So the installer's tests run the zipapp under this
interpreter: `$CALICO_TEST_AGENT_PYTHON` if set, else a pyenv-built CPython of the claimed
minor version (the machines this project is built on carry 3.6 to 3.13: `pyenv versions`),
else `python3.6` on PATH. None of them is an error, never a skip.
"""

import os
import shutil
import subprocess
from pathlib import Path

from calico_dcos.installer import MIN_PYTHON

AGENT_PYTHON_ENV = "CALICO_TEST_AGENT_PYTHON"


def pyenv_roots() -> list[Path]:
    roots = [os.environ.get("PYENV_ROOT"), str(Path.home() / ".pyenv"), "/root/.pyenv"]
    pyenv = shutil.which("pyenv")
    if pyenv:
        answer = subprocess.run([pyenv, "root"], capture_output=True, text=True, check=False)
        roots.insert(0, answer.stdout.strip())
    return [Path(root) for root in roots if root]


def version_of(python: str) -> tuple[int, int]:
    """(major, minor) that `python` reports."""
    code = "import sys; print('%d %d' % sys.version_info[:2])"
    answer = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
    major, minor = answer.stdout.split()
    return int(major), int(minor)


def find_oldest_agent_python() -> str:
    """An interpreter of exactly MIN_PYTHON; LookupError (saying how to get one) if none."""
    if os.environ.get(AGENT_PYTHON_ENV):
        return os.environ[AGENT_PYTHON_ENV]
    return find_python("{}.{}".format(*MIN_PYTHON))


def find_python(wanted: str) -> str:
    """A pyenv-built CPython `wanted` (`3.6`), else `python3.6` on PATH; else LookupError."""
    for root in pyenv_roots():
        for candidate in sorted((root / "versions").glob(f"{wanted}.*/bin/python{wanted}")):
            return str(candidate)
    on_path = shutil.which(f"python{wanted}")
    if on_path:
        return on_path
    raise LookupError(
        f"no Python {wanted} to run the agent-side installer's tests under: install it "
        f"(`pyenv install {wanted}`) or point ${AGENT_PYTHON_ENV} at one"
    )
