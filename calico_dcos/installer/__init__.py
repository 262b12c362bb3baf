"""Agent-side installer: the commands behind the docker and CNI steps, run on each agent.

Standard library only, and Python 3.6: it runs from a zipapp on the agent's
`/opt/mesosphere/bin/python3`, which is CPython 3.6.3 on DC/OS 1.11 and 1.12, 3.6.6 on 1.13
and 3.6.8 on 2.0 to 2.2 (and 3.5.2 on 1.10, which the package does not support:
dcos/dcos `packages/python/buildinfo.json` on each release branch). So: no
`from __future__ import annotations` (3.7), no `subprocess.run(capture_output=, text=)` (3.7),
no dataclasses (3.7), no `:=` (3.8), no `list[str]` or `X | None` evaluated at run time
(3.9/3.10); annotations use `typing`. `tests/installer` runs every command under the oldest
claimed Python (`agent_python` fixture).

Every command acts only below `--host-root`, backs up what it changes, writes atomically and
records its progress in markers, so that a run cut off at any point and run again ends as one
clean run would.
"""

MIN_PYTHON = (3, 6)
"""The oldest Python the installer runs on; `installer.pyz` refuses older ones by name."""
