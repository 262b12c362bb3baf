"""`tests` is not a package: put the repository on sys.path for `tests.helpers` and the harness."""

import sys
from pathlib import Path

REPO = str(Path(__file__).resolve().parents[2])
if REPO not in sys.path:
    sys.path.insert(0, REPO)
