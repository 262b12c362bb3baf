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

import ipaddress
import re
from collections.abc import Mapping
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


# ---------------------------------------------------------------------------------------
# Profiles: coherent sets of Calico, etcd and Docker parts that work together.

CALICO_DOCS_26 = "projectcalico/calico@v2.6.12:_data/versions.yml"
DCOS_CALICO = "dcos/dcos@2.2:packages/calico/buildinfo.json"
DCOS_CALICO_CONFIG = "dcos/dcos@2.2:gen/dcos-config.yaml (calico part) and gen/calc.py"


class Download(NamedTuple):
    """A file an agent fetches, and the checksum it must have (`sha1:…`, or '' for none)."""

    uri: str
    checksum: str


class Profile(NamedTuple):
    """One supported combination; each value names where it was read (`sources`)."""

    name: str
    calico: tuple[int, int, int]
    etcd_api: str  # "v2" or "v3": what Calico's datastore speaks
    datastore_type: str  # calico/node's DATASTORE_TYPE
    node_image: str
    calico_plugin: Download
    calico_ipam_plugin: Download
    libnetwork_image: str  # "" when the plugin only ships as a binary
    libnetwork_binary: Download | None
    dcos: tuple[str, ...]  # the DC/OS releases it is meant for
    sources: tuple[str, ...]


CALICO_26 = Profile(
    name="calico-2.6",
    calico=(2, 6, 12),
    etcd_api="v2",
    datastore_type="etcdv2",
    node_image="calico/node:v2.6.12",
    calico_plugin=Download(
        "https://github.com/projectcalico/cni-plugin/releases/download/v1.11.8/calico", ""
    ),
    calico_ipam_plugin=Download(
        "https://github.com/projectcalico/cni-plugin/releases/download/v1.11.8/calico-ipam", ""
    ),
    libnetwork_image="calico/libnetwork-plugin:v1.1.3",
    libnetwork_binary=None,
    dcos=("1.11", "1.12", "1.13"),
    sources=(
        CALICO_DOCS_26 + " (calico/node v2.6.12, calico/cni v1.11.8 download URLs, "
        "libnetwork-plugin v1.1.3)",
        "projectcalico/calico@v2.6.12:v2.6/getting-started/mesos/installation/dc-os/index.md "
        "(the Universe etcd package at _etcd-server._tcp.etcd.mesos, an etcd proxy on every "
        "agent, Docker's cluster store, the CNI plugins, rp_filter)",
    ),
)
CALICO_V3 = Profile(
    name="calico-v3",
    calico=(3, 14, 0),
    etcd_api="v3",
    datastore_type="etcdv3",
    node_image="calico/node:v3.14.0",
    calico_plugin=Download(
        "https://github.com/projectcalico/cni-plugin/releases/download/v3.14.0/calico-amd64",
        "sha1:1579ebf178f72292a1bc8fab0d74a88ab0921084",
    ),
    calico_ipam_plugin=Download(
        "https://github.com/projectcalico/cni-plugin/releases/download/v3.14.0/calico-ipam-amd64",
        "sha1:7eeaf366c30c279c4688a220083cb5f123616042",
    ),
    libnetwork_image="",
    libnetwork_binary=Download(
        "https://github.com/mesosphere/libnetwork-plugin/releases/download/v1.1.3-2-d2iq/"
        "libnetwork-plugin-amd64",
        "sha1:2db71bf79ac47e7eba2a59ed81440b47defb29ce",
    ),
    dcos=("1.11", "1.12", "1.13", "2.0"),
    sources=(
        DCOS_CALICO + " (calico/node v3.14.0, the cni-plugin v3.14.0 and D2iQ libnetwork "
        "v1.1.3-2-d2iq assets with their sha1)",
        DCOS_CALICO_CONFIG,
    ),
)
PROFILES: dict[str, Profile] = {p.name: p for p in (CALICO_26, CALICO_V3)}


def profile_of(options: Mapping) -> Profile:
    return PROFILES[options["calico"]["profile"]]


def proxy_mode(options: Mapping) -> str:
    """The etcd proxy's mode: `etcd.proxy_mode`, or what the profile's Calico speaks."""
    mode = options["etcd"]["proxy_mode"]
    return profile_of(options).etcd_api if mode == "auto" else mode


def networking_backend(options: Mapping) -> str:
    """CALICO_NETWORKING_BACKEND: given, or `vxlan` for VXLAN, else `bird` (DC/OS 2.x's rule)."""
    backend = options["node"]["networking_backend"]
    if backend != "auto":
        return backend
    return "vxlan" if options["calico"]["ipv4pool_encapsulation"] == "vxlan" else "bird"


def node_image(options: Mapping) -> str:
    return options["node"]["image"] or profile_of(options).node_image


def cni_plugins(options: Mapping) -> dict[str, Download]:
    """`calico` and `calico-ipam`: the given URIs and checksums, else the profile's."""
    profile, cni = profile_of(options), options["cni"]
    plugins = {}
    for name, key, default in (
        ("calico", "calico", profile.calico_plugin),
        ("calico-ipam", "calico_ipam", profile.calico_ipam_plugin),
    ):
        uri = cni[f"{key}_uri"] or default.uri
        given = cni[f"{key}_checksum"]
        plugins[name] = Download(uri, given or (default.checksum if uri == default.uri else ""))
    return plugins


def libnetwork_image(options: Mapping) -> str:
    """The plugin's image, or "" when the profile runs its binary on the host."""
    return options["libnetwork"]["image"] or profile_of(options).libnetwork_image


def libnetwork_binary(options: Mapping) -> Download:
    """The plugin binary (calico-v3 without an image): given, else D2iQ's fork's release."""
    default = profile_of(options).libnetwork_binary
    given = options["libnetwork"]["binary_uri"]
    if given and (default is None or given != default.uri):
        return Download(given, "")
    return default


def image_version(image: str) -> tuple[int, ...] | None:
    """`calico/node:v3.14.0` -> (3, 14, 0); None for a digest or a tag that is no version."""
    tag = image.rpartition(":")[2] if ":" in image.rpartition("/")[2] else ""
    match = re.fullmatch(r"v?(\d+)\.(\d+)(?:\.(\d+))?(?:[-+].*)?", tag)
    if not match:
        return None
    return tuple(int(part) for part in match.groups() if part is not None)


def felix_checks_rpf_itself(options: Mapping) -> bool:
    """Felix v3.12 and later check workload source addresses with iptables, not rp_filter.

    projectcalico/felix commit 9eabe46 "Use iptables for ipv4 RPF check (#2189)", first in
    v3.12.0-felix, removed `IgnoreLooseRPF` (felix `config/config_params.go`: present in
    v3.11.0, absent in v3.12.0), so FELIX_IGNORELOOSERPF means nothing from v3.12 on.
    """
    version = image_version(node_image(options)) or profile_of(options).calico
    return version >= (3, 12)


def ignores_loose_rpf(options: Mapping) -> bool:
    """Whether calico-node gets FELIX_IGNORELOOSERPF=true (and the operator the warning)."""
    return options["node"]["ignore_loose_rpf"] and not felix_checks_rpf_itself(options)


# ---------------------------------------------------------------------------------------
# Combinations that cannot work: refused by `config validate` and at start-up alike.

ETCD_GRPC_PROXY_SRV = "etcd-io/etcd@v3.4.23:etcdmain/grpc_proxy.go, pkg/srv/srv.go"
ETCD_V2_PROXY_SRV = "etcd-io/etcd@v3.4.23:embed/config.go (GetCluster, etcd-server)"
LIBKV_ETCD = "docker/libkv store/etcd/etcd.go (the etcd v2 client)"
FELIX_VXLAN = "projectcalico/felix config/config_params.go: VXLANEnabled first in v3.7.0"
NODE_LIVENESS = "projectcalico/node cmd/calico-node/main.go: -felix-live/-bird-live"


def _error(path: str, what: str, why: str, source: str, fix: str) -> tuple[str, str]:
    return path, f"{what}: {why} (source: {source}); {fix}"


def profile_errors(
    options: Mapping, failed: set[str], skipped: list[str] | None = None
) -> list[tuple[str, str]]:
    """`(option path, message)` for each option that contradicts the profile's facts.

    Each message says what is wrong, why (the fact), where the fact was read, and the fix.
    A check that reads an option the schema refused (`failed`) cannot run: its name goes to
    `skipped` (so that the operator hears that more checks follow), and every other check
    still runs, so that one `config validate` lists every error it can.
    """
    errors: list[tuple[str, str]] = []
    skipped = [] if skipped is None else skipped

    def ready(check: str, *paths: str) -> bool:
        if failed.isdisjoint(paths):
            return True
        skipped.append(check)
        return False

    calico, etcd = options["calico"], options["etcd"]
    profile_known = ready("the profile's etcd API", "calico.profile", "etcd.proxy_mode")
    if profile_known:
        profile = profile_of(options)
        mode = proxy_mode(options)
        if mode != profile.etcd_api:
            errors.append(_error(
                "etcd.proxy_mode", f"'{mode}' with calico.profile {profile.name}",
                f"Calico {profile.calico[0]}.{profile.calico[1]} speaks only the etcd "
                f"{profile.etcd_api} API (DATASTORE_TYPE {profile.datastore_type}) and the "
                f"{mode} proxy serves only the {mode} API",
                ETCD_GRPC_PROXY_SRV if mode == "v3" else ETCD_V2_PROXY_SRV,
                "set it to 'auto'",
            ))  # fmt: skip
        if ready("the etcd binary's version", "etcd.cluster_endpoints", "etcd.run_proxy",
                 "etcd.binary_uri"):  # fmt: skip
            cluster = [e for e in etcd["cluster_endpoints"].split(",") if e.strip()]
            errors += _etcd_binary_errors(options, mode, cluster, failed)
            if profile.etcd_api == "v3" and not cluster:
                errors.append(_error(
                    "etcd.cluster_endpoints", "empty with calico.profile calico-v3",
                    "Calico v3 needs an etcd v3 cluster given by its endpoints; the Universe "
                    "etcd package behind etcd.mesos (etcd-mesos) serves the v2 API and "
                    "publishes _etcd-server._tcp, while grpc-proxy's SRV discovery asks for "
                    "_etcd-client._tcp",
                    ETCD_GRPC_PROXY_SRV + "; " + CALICO_26.sources[1],
                    "give the etcd v3 cluster's client URLs (on DC/OS 2.x: "
                    "http://master.dcos.thisdcos.directory:2379), or use calico.profile "
                    "calico-2.6",
                ))  # fmt: skip
        if profile.etcd_api == "v3" and ready(
            "Docker's cluster store", "etcd.cluster_serves_v2", "docker.enable",
            "libnetwork.enable",
        ) and not etcd["cluster_serves_v2"]:  # fmt: skip
            for step in ("docker", "libnetwork"):
                if options[step]["enable"]:
                    errors.append(_error(
                        f"{step}.enable", "on with calico.profile calico-v3 and an etcd "
                        "cluster that does not serve the v2 API (etcd.cluster_serves_v2 false)",
                        "Docker's cluster store, which Calico's libnetwork plugin needs, "
                        "speaks only the etcd v2 API, and grpc-proxy serves only v3",
                        f"{LIBKV_ETCD}; {ETCD_GRPC_PROXY_SRV}",
                        "set etcd.cluster_serves_v2 if the cluster runs with --enable-v2 (as "
                        "DC/OS 2.x's does: dcos/dcos@2.2:packages/etcd/extra/systemd/etcd.sh), "
                        f"else set {step}.enable to false",
                    ))  # fmt: skip
        if ready("VXLAN against the profile", "calico.ipv4pool_encapsulation") and (
            calico["ipv4pool_encapsulation"] == "vxlan" and profile.calico < (3, 7)
        ):
            errors.append(_error(
                "calico.ipv4pool_encapsulation", "'vxlan' with calico.profile calico-2.6",
                "Calico has VXLAN only from v3.7", FELIX_VXLAN, "use 'ipip' or 'none'",
            ))  # fmt: skip
        if ready("node.image against the profile", "node.image"):
            errors += _image_errors(options, profile)
    else:
        skipped += ["the etcd binary's version", "Docker's cluster store",
                    "VXLAN against the profile", "node.image against the profile"]  # fmt: skip
    if ready("the backend against the encapsulation", "node.networking_backend",
             "calico.ipv4pool_encapsulation"):  # fmt: skip
        backend = networking_backend(options)
        encapsulation = calico["ipv4pool_encapsulation"]
        if (backend == "vxlan") != (encapsulation == "vxlan") and backend != "none":
            errors.append(_error(
                "node.networking_backend", f"'{backend}' with calico.ipv4pool_encapsulation "
                f"'{encapsulation}'",
                "VXLAN pools route without BGP (backend vxlan), IPIP and unencapsulated pools "
                "need BGP routes from BIRD (backend bird)", DCOS_CALICO_CONFIG,
                "set it to 'auto'",
            ))  # fmt: skip
    if "calico.ipv4pool_cidr" not in failed:
        errors += _pool_errors(calico["ipv4pool_cidr"])
    return errors


ETCD_SRV_BUG = (
    "etcd-io/etcd@v3.4.23:embed/config.go (GetDNSClusterNames keeps the _etcd-server "
    'members only when their lookup fails), fixed by 603d975 "Fix cluster peer HTTP SRV '
    'discovery", first in v3.5.0'
)
ETCD_NO_V2_PROXY = "etcd-io/etcd@v3.6.0:server/etcdmain/etcd.go (no startProxy)"


def etcd_version(uri: str) -> tuple[int, ...] | None:
    """`…/etcd-v3.4.23-linux-amd64.tar.gz` -> (3, 4, 23); None for another name."""
    match = re.search(r"etcd-v(\d+)\.(\d+)\.(\d+)", uri)
    return tuple(int(part) for part in match.groups()) if match else None


def _etcd_binary_errors(
    options: Mapping, mode: str, cluster: list, failed: set[str]
) -> list[tuple[str, str]]:
    """The v2 proxy: gone in etcd 3.6; its SRV discovery broken throughout etcd 3.4."""
    etcd = options["etcd"]
    version = etcd_version(etcd["binary_uri"])
    if not etcd["run_proxy"] or mode != "v2" or version is None or "etcd.binary_uri" in failed:
        return []
    if version >= (3, 6):
        return [_error(
            "etcd.binary_uri", f"etcd {'.'.join(map(str, version))} with the v2 proxy",
            "etcd 3.6 removed the v2 proxy (--proxy=on)", ETCD_NO_V2_PROXY,
            "use etcd 3.5 (the default)",
        )]  # fmt: skip
    if (3, 4) <= version < (3, 5) and not cluster:
        return [_error(
            "etcd.binary_uri", f"etcd {'.'.join(map(str, version))} with the v2 proxy finding "
            f"its members by SRV ({etcd['discovery_srv']})",
            "etcd 3.4 finds no _etcd-server._tcp members: it fails asking for "
            "_etcd-server-ssl._tcp even when _etcd-server._tcp answers", ETCD_SRV_BUG,
            "use etcd 3.5 (the default), or give etcd.cluster_endpoints",
        )]  # fmt: skip
    return []


def _pool_errors(cidr: str) -> list[tuple[str, str]]:
    """An IPv4 network in CIDR form with no host bits (Calico's IPPool `cidr`)."""
    try:
        network = ipaddress.ip_network(cidr, strict=True)
    except ValueError as exc:
        return [("calico.ipv4pool_cidr", f"{cidr!r} is not an IPv4 network: {exc}; "
                 "e.g. 172.29.0.0/16")]  # fmt: skip
    if network.version != 4:
        return [("calico.ipv4pool_cidr", f"{cidr!r} is IPv6; give an IPv4 pool")]
    return []


def _image_errors(options: Mapping, profile: Profile) -> list[tuple[str, str]]:
    version = image_version(node_image(options))
    if version is None:
        return []
    if profile.calico[0] == 2 and version[:2] != (2, 6):
        return [_error(
            "node.image", f"{node_image(options)} with calico.profile calico-2.6",
            "the profile's parts (etcd v2, CNI plugin v1.11, libnetwork v1.1.3) belong to "
            "Calico v2.6", CALICO_DOCS_26, "leave node.image empty or give a v2.6 tag",
        )]  # fmt: skip
    if profile.calico[0] == 3 and version < (3, 12):
        return [_error(
            "node.image", f"{node_image(options)} with calico.profile calico-v3",
            "the profile kills calico-node only on liveness (calico-node -felix-live "
            "-bird-live) and leaves rp_filter to Felix (v3.12 and later)",
            NODE_LIVENESS + "; " + felix_checks_rpf_itself.__doc__.split("\n")[2].strip(),
            "leave node.image empty (v3.14.0, as DC/OS 2.x) or give v3.12 or later",
        )]  # fmt: skip
    return []
