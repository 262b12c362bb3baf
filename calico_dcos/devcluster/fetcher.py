"""The Mesos fetcher, for the devcluster: put a task's `CommandInfo.uris` into its sandbox.

Like Mesos' fetcher: the file lands in the sandbox under `output_file` or the URI's basename;
`executable` makes it executable and skips extraction; `extract` (default true) unpacks
tar and zip archives into the sandbox; `cache` is ignored (there is no fetcher cache here).
Blocking: the process executor runs it in a thread.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import zipfile
from pathlib import Path
from urllib.parse import unquote, urlparse

import requests

TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
HTTP_TIMEOUT = 30.0


class FetchError(Exception):
    """A URI could not be fetched; the message says which and why, for TASK_FAILED."""


def fetch_all(uris: list[dict], sandbox: Path) -> list[Path]:
    """Fetch every URI in order; the first failure stops the launch, as in Mesos."""
    return [fetch(uri, sandbox) for uri in uris]


def fetch(uri: dict, sandbox: Path) -> Path:
    """Fetch one `CommandInfo.URI` into `sandbox`; returns the file it wrote."""
    value = uri.get("value", "")
    try:
        target = sandbox / output_name(uri)
        download(value, target)
        if uri.get("executable", False):
            target.chmod(0o755)
        elif uri.get("extract", True) and is_archive(target.name):
            extract(target, sandbox)
    except (
        OSError,
        ValueError,
        requests.RequestException,
        tarfile.TarError,
        zipfile.BadZipFile,
    ) as exc:
        raise FetchError(f"Failed to fetch '{value}': {exc}") from exc
    return target


def output_name(uri: dict) -> str:
    """`output_file` if given (relative to the sandbox), else the basename of the URI path."""
    if uri.get("output_file"):
        name = uri["output_file"]
        if os.path.isabs(name) or ".." in Path(name).parts:
            raise ValueError(f"output_file {name!r} must stay inside the sandbox")
        return name
    name = os.path.basename(unquote(urlparse(uri.get("value", "")).path))
    if not name:
        raise ValueError("the URI has no file name and no output_file")
    return name


def download(value: str, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    scheme = urlparse(value).scheme
    if scheme in ("http", "https"):
        download_http(value, target)
    elif scheme == "file":
        shutil.copyfile(unquote(urlparse(value).path), target)
    elif scheme == "":
        if not os.path.isabs(value):
            raise ValueError(
                "a relative path needs the agent's --frameworks_home, which the "
                "devcluster does not set"
            )
        shutil.copyfile(value, target)
    else:
        raise ValueError(f"unsupported URI scheme {scheme!r}")


def download_http(url: str, target: Path) -> None:
    """Stream the body to disk; anything but 2xx is an error, like Mesos' curl fetch."""
    with requests.get(url, stream=True, timeout=HTTP_TIMEOUT) as response:
        if not response.ok:
            raise ValueError(
                f"Error downloading resource, received HTTP return code {response.status_code}"
            )
        with open(target, "wb") as out:
            for chunk in response.iter_content(chunk_size=1 << 16):
                out.write(chunk)


def is_archive(name: str) -> bool:
    return name.endswith(TAR_SUFFIXES) or name.endswith(".zip")


def extract(archive: Path, directory: Path) -> None:
    """Unpack into the sandbox, refusing members that would land outside it."""
    if archive.name.endswith(".zip"):
        extract_zip(archive, directory)
        return
    with tarfile.open(archive) as tarred:
        tarred.extractall(directory, filter="data")


def extract_zip(archive: Path, directory: Path) -> None:
    """Like `unzip`, which Mesos runs: keep each member's Unix permissions."""
    with zipfile.ZipFile(archive) as zipped:
        for member in zipped.infolist():
            # ZipFile.extract drops absolute and `..` components, so members stay inside.
            path = Path(zipped.extract(member, directory))  # noqa: S202
            mode = (member.external_attr >> 16) & 0o777
            if mode:
                path.chmod(mode)
