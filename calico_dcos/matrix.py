"""What each DC/OS release runs on its agents, as read from DC/OS's own sources.

Pure data, no I/O: one row per DC/OS release line, each value with the file it was read from.
The package's claims follow from it: `minDcosReleaseVersion` (universe/package.json) is the
oldest release whose agents' Python runs the installer (`MIN_PYTHON`), and the support matrix
page (docs/support-matrix.md) shows these rows.

Sources, all in github.com/dcos/dcos on the release branch named by the row:
- Python: `packages/python/buildinfo.json`, the CPython tarball DC/OS builds into
  `/opt/mesosphere/bin/python3`.
- Mesos: `packages/mesos/buildinfo.json`, `ref_origin` (the apache/mesos branch built).
- bundled Calico: `packages/calico/buildinfo.json` (absent before 2.1), `"docker":
  "calico/node:v3.14.0"` and the cni-plugin v3.14.0 URLs.
- masters' etcd: `packages/etcd/buildinfo.json` (etcd v3.4.9, absent before 2.1), started with
  `--enable-v2=true` (`packages/etcd/extra/systemd/etcd.sh`).
"""

from __future__ import annotations

from typing import NamedTuple

from calico_dcos.installer import MIN_PYTHON

DCOS_REPO = "dcos/dcos"
PYTHON_SOURCE = "packages/python/buildinfo.json"
MESOS_SOURCE = "packages/mesos/buildinfo.json"
CALICO_SOURCE = "packages/calico/buildinfo.json"
ETCD_SOURCE = "packages/etcd/buildinfo.json"


class DcosRelease(NamedTuple):
    """One DC/OS release line (the dcos/dcos branch of that name)."""

    version: tuple[int, int]
    python: tuple[int, int, int]  # the agents' /opt/mesosphere/bin/python3
    mesos: tuple[int, int]  # the Mesos branch the agents run
    bundled_calico: str | None  # the Calico DC/OS itself runs on every node, if any
    masters_etcd: str | None  # the etcd DC/OS runs on its masters (v2 API enabled), if any

    @property
    def name(self) -> str:
        return "{}.{}".format(*self.version)

    def source(self, path: str) -> str:
        """`dcos/dcos@1.13:packages/python/buildinfo.json`: where a value of this row was read."""
        return f"{DCOS_REPO}@{self.name}:{path}"


DCOS_RELEASES: tuple[DcosRelease, ...] = (
    DcosRelease((1, 10), (3, 5, 2), (1, 4), None, None),
    DcosRelease((1, 11), (3, 6, 3), (1, 5), None, None),
    DcosRelease((1, 12), (3, 6, 3), (1, 7), None, None),
    DcosRelease((1, 13), (3, 6, 6), (1, 8), None, None),
    DcosRelease((2, 0), (3, 6, 8), (1, 9), None, None),
    DcosRelease((2, 1), (3, 6, 8), (1, 10), "v3.14.0", "v3.4.9"),
    DcosRelease((2, 2), (3, 6, 8), (1, 11), "v3.14.0", "v3.4.9"),
)
BY_DCOS: dict[str, DcosRelease] = {release.name: release for release in DCOS_RELEASES}


def supported_releases() -> list[DcosRelease]:
    """The releases whose agents' Python runs the installer."""
    return [r for r in DCOS_RELEASES if r.python[:2] >= MIN_PYTHON]


def min_dcos_release_version() -> str:
    """What universe/package.json must claim as `minDcosReleaseVersion`."""
    return supported_releases()[0].name
