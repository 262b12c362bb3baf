"""`calico-dcos units --options FILE --output DIR [--agent-kind private|public]`: the manual path.

Writes a bundle that installs Calico on one kind of agent as systemd services, from the same
options and the same TaskInfos as the framework (`calico_dcos/units.py` says how):

    DIR/install.sh     copy into place, daemon-reload, enable, start; idempotent
    DIR/uninstall.sh   stop, revert Docker and CNI, put every file back; idempotent
    DIR/setup.sh       the docker and cni steps (run by install.sh)
    DIR/root/…         the files as they land on the host (units, scripts, env files, etcd)
    DIR/sandboxes/…    what the one-shot steps and the revert run with (the installer zipapp,
                       Calico's CNI plugins)

URIs are fetched now, with the devcluster's Mesos fetcher, so agents need no download. The
bundle holds secrets (etcd URLs, `node.extra_env`): DIR is mode 0700, its env files 0600.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

import click

from calico_dcos import steps
from calico_dcos.artifacts import installer_zipapp_bytes
from calico_dcos.options import OptionsError, load_options
from calico_dcos.units import (
    ARTIFACTS_URL,
    INSTALLER_URI,
    Bundle,
    UnitsError,
    install_script,
    render,
    uninstall_script,
)

MARKER = ".calico-dcos-units"


def write(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    path.write_bytes(data)
    path.chmod(mode)


def fetch_into(bundle: Bundle, out: Path, options: Mapping | None = None) -> None:
    """Each URI as Mesos' fetcher would put it in the sandbox; the installer is built here.
    A URI that cannot be fetched is a UnitsError naming the option that gave it (from
    `options`, as `steps.fetched_uris` maps them)."""
    from calico_dcos.devcluster.fetcher import FetchError, fetch

    given_by = {}
    for step in steps.FETCHED_FROM if options is not None else ():
        given_by.update(steps.fetched_uris(step, options, ARTIFACTS_URL))
    for item in bundle.fetches:
        directory = out / item.directory
        if item.uri["value"] == INSTALLER_URI:
            write(directory / "installer.pyz", installer_zipapp_bytes(), 0o644)
            continue
        try:
            fetch(item.uri, directory)
        except FetchError as exc:
            option = given_by.get(item.uri["value"])
            hint = f"check {option}" if option else "check the option that names this URI"
            raise UnitsError(f"{exc}; {hint}") from None
        fetched = directory / os.path.basename(item.uri["value"])
        if fetched.exists() and not item.uri.get("executable"):
            fetched.chmod(0o644)


def host_files(out: Path) -> list[tuple[str, int]]:
    """Every file under DIR/root as (host path, mode), sorted; only regular files."""
    root = out / "root"
    found = []
    for path in sorted(root.rglob("*")):
        if path.is_symlink() or not (path.is_file() or path.is_dir()):
            raise UnitsError(f"{path}: only regular files can be installed (a fetched archive?)")
        host_path = "/" + str(path.relative_to(root))
        if not host_path.isprintable():
            raise UnitsError(f"{host_path!r}: a file name with a control character (an archive?)")
        if path.is_file():
            found.append((host_path, path.stat().st_mode & 0o7777))
    return found


def build(options_path: str | None, output: Path, public: bool, environ=os.environ) -> Bundle:
    """Load the options (file, `CALICO_*` environment, defaults) and write the bundle."""
    return write_bundle(load_options(options_path, environ), output, public)


def write_bundle(options: Mapping, output: Path, public: bool) -> Bundle:
    """Render and fetch into a fresh directory, then put it at `output` (replacing a bundle
    written before, never anything else)."""
    bundle = render(options, public)
    output = output.resolve()
    if output.exists() and any(output.iterdir()) and not (output / MARKER).exists():
        raise UnitsError(f"--output {output}: not empty and not a calico-dcos units bundle")
    output.parent.mkdir(parents=True, exist_ok=True)
    fresh = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    try:
        for item in bundle.files:
            write(fresh / item.path, item.data, item.mode)
        fetch_into(bundle, fresh, options)
        files = host_files(fresh)
        write(fresh / "install.sh", install_script(bundle, files).encode(), 0o700)
        write(fresh / "uninstall.sh", uninstall_script(bundle, files).encode(), 0o700)
        write(fresh / MARKER, b"written by calico-dcos units; replaced when run again\n", 0o600)
        fresh.chmod(0o700)
        if output.exists():
            old = output.with_name(f".{output.name}.old-{os.getpid()}")
            output.rename(old)
            fresh.rename(output)
            shutil.rmtree(old)
        else:
            fresh.rename(output)
    except BaseException:
        shutil.rmtree(fresh, ignore_errors=True)
        raise
    return bundle


@click.command()
@click.option(
    "--options",
    "options_path",
    type=click.Path(dir_okay=False),
    help="Options file (JSON or YAML), then CALICO_* variables, then defaults, as for `run`.",
)
@click.option(
    "--output",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory to write the bundle to; a bundle written before is replaced, any other "
    "non-empty directory refused.",
)
@click.option(
    "--agent-kind",
    type=click.Choice(["private", "public"]),
    default="private",
    show_default=True,
    help="public agents restart dcos-mesos-slave-public",
)
def units(options_path: str | None, output: Path, agent_kind: str) -> None:
    """Write systemd units and install.sh/uninstall.sh: Calico without the framework."""
    try:
        bundle = build(options_path, output, agent_kind == "public")
    except OptionsError as exc:
        for line in exc.lines():
            click.echo(line, err=True)
        raise SystemExit(1) from None
    except UnitsError as exc:
        click.echo(f"calico-dcos units: {exc}", err=True)
        raise SystemExit(1) from None
    names = ", ".join(d.unit for d in bundle.daemons) or "no daemon units"
    click.echo(f"wrote {output}: {names}; run {output}/install.sh as root on {agent_kind} agents")
