"""The package claims only what is tested: the DC/OS releases whose agents run the installer."""

import json
from pathlib import Path

from calico_dcos import matrix
from calico_dcos.installer import MIN_PYTHON

ROOT = Path(__file__).resolve().parents[2]


def test_min_dcos_release_version_is_the_oldest_release_whose_python_runs_the_installer():
    """DC/OS 1.10 ships Python 3.5.2 (f-strings are 3.6), 1.11 ships 3.6.3
    (dcos/dcos packages/python/buildinfo.json on the 1.10 and 1.11 branches)."""
    package = json.loads((ROOT / "universe" / "package.json").read_text())

    assert matrix.BY_DCOS["1.10"].python == (3, 5, 2)
    assert matrix.BY_DCOS["1.11"].python == (3, 6, 3)
    assert MIN_PYTHON == (3, 6)
    assert package["minDcosReleaseVersion"] == matrix.min_dcos_release_version() == "1.11"


def test_every_supported_release_runs_python_3_6_which_the_installer_tests_run_under():
    assert {r.python[:2] for r in matrix.supported_releases()} == {MIN_PYTHON}
    assert [r.name for r in matrix.supported_releases()] == [
        "1.11", "1.12", "1.13", "2.0", "2.1", "2.2"
    ]  # fmt: skip
