"""scripts/document_sizes.py (the sizes README's 50,000-agent section quotes) still runs: it
builds the plan's answers and the devcluster's documents from the project's own code, which
changes under it (it broke twice on 2026-11-29 without a test noticing)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_document_sizes_script_runs_and_prints_every_size():
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "document_sizes.py"), "--agents", "20"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    for line in ("/v1/plan as answered (a page)", "GET_FRAMEWORKS, our framework (now)"):
        assert line in result.stdout
