"""The Mesos fetcher, for the devcluster: put a task's `CommandInfo.uris` into its sandbox.

Like Mesos' fetcher (apache/mesos docs/fetcher.md, src/launcher/fetcher.cpp): the file lands
in the sandbox under `output_file` or the URI's basename; `executable` makes it executable
and skips extraction; `extract` (default true) unpacks tar and zip archives into the sandbox.

`cache: true` goes through the agent's fetcher cache (`FetcherCache`), as Mesos' does: a URI
is downloaded once per user into the cache ("the combination of user name and "uri" uniquely
identifies a cacheable fetch result", docs/fetcher.md), and every fetch of it, that one
included, copies or extracts from the cache file into the sandbox; an archive extracted from
the cache is not copied into the sandbox ("In case a cache file is unpacked, only the
extraction result will be found in the sandbox"); `executable` is applied to the sandbox's
copy only. A cache entry is never refreshed: a URI whose content may change must not be
cached ("The framework should start using a fresh unique URI whenever the resource's content
has changed"). Without `cache` the download goes straight into the sandbox, every time.
Blocking: the process executor runs it in a thread.

`run_fetcher` is the fetcher *program* as the agent runs it (`FetcherProcess::run`): its log
goes to the sandbox's `stdout`/`stderr`, its failure is only an exit status, and the agent's
TASK_FAILED says only that (`launch_failed_message`); the URI and why are in `stderr`.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import shutil
import tarfile
import tempfile
import threading
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

import requests

TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
HTTP_TIMEOUT = 30.0
# The agent's --fetcher_cache_size default (apache/mesos src/slave/constants.hpp
# DEFAULT_FETCHER_CACHE_SIZE = Gigabytes(2)).
DEFAULT_CACHE_BYTES = 2 * 1024**3
CACHE_FILE_PREFIX = (
    "c"  # cache files are c<serial>-<basename> (src/slave/containerizer/fetcher.cpp)
)


class FetchError(Exception):
    """A URI could not be fetched; the message is the fetcher program's own line, "Failed to
    fetch '<uri>': <why>" (apache/mesos src/launcher/fetcher.cpp, `main`), which Mesos writes
    to the sandbox's `stderr`, not to the task's status (`run_fetcher`)."""


@dataclass
class _Entry:
    """One cached URI: its file in the cache, once downloaded (`ready`)."""

    filename: str
    ready: threading.Event = field(default_factory=threading.Event)
    error: Exception | None = None
    size: int = 0
    in_use: int = 0  # fetches copying or extracting from it: not evictable


class FetcherCache:
    """One agent's fetcher cache: `<directory>/<user>/c<serial>-<basename>` (or directly
    under `directory` without a user), keyed by (user, URI), as Mesos' is (apache/mesos
    src/slave/containerizer/fetcher.cpp: `cacheKey`, `nextFilename`, and the per-user
    directory of `FetcherProcess::fetch`).

    Like Mesos' agent, the cache starts empty (the agent clears `--fetcher_cache_dir` on
    startup: `Fetcher::Fetcher`), concurrent fetches of a URI wait for the first download
    ("Competing requests for the same URI simply wait upon completion of the first
    request", docs/fetcher.md), and files not in use are evicted, least recently used
    first, to stay within `size_limit` bytes (`--fetcher_cache_size`). Unlike Mesos, the
    size is known only after the download (Mesos asks for it first, with a HEAD request
    or stat, and bypasses the cache when it cannot), so a file larger than the whole cache
    is delivered and then dropped, as Mesos does with a file "larger than expected".
    A failed download is not cached: the next fetch tries again.

    `downloads` counts the URIs downloaded into the cache; `hits` the fetches served from a
    file already there. Thread-safe.
    """

    def __init__(self, directory: Path, size_limit: int = DEFAULT_CACHE_BYTES) -> None:
        self.directory = Path(directory)
        self.size_limit = size_limit
        self.downloads = 0
        self.hits = 0
        self._entries: OrderedDict[tuple[str | None, str], _Entry] = OrderedDict()
        self._serial = 0
        self._lock = threading.Lock()
        shutil.rmtree(self.directory, ignore_errors=True)

    def clear(self) -> None:
        """Forget every entry and delete the files: what an agent restart does."""
        with self._lock:
            self._entries.clear()
            shutil.rmtree(self.directory, ignore_errors=True)

    def fetch(self, uri: dict, sandbox: Path, user: str | None = None) -> Path:
        """Put `uri` into `sandbox` from the cache, downloading it first if it is not there;
        returns the file written (the sandbox itself when an archive was extracted)."""
        value = uri.get("value", "")
        entry, download_it = self._reserve(user, value)
        try:
            path = self._path(user, entry.filename)
            if download_it:
                self._download(entry, value, path)
            else:
                entry.ready.wait()
                if entry.error is not None:
                    raise entry.error
            return deliver(uri, path, sandbox, from_cache=True)
        finally:
            self._release(user, value, entry)

    def _reserve(self, user: str | None, value: str) -> tuple[_Entry, bool]:
        with self._lock:
            key = (user, value)
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                entry.in_use += 1
                self.hits += 1
                return entry, False
            self._serial += 1
            entry = _Entry(f"{CACHE_FILE_PREFIX}{self._serial}-{_short_basename(value)}")
            entry.in_use = 1
            self._entries[key] = entry
            self.downloads += 1
            return entry, True

    def _download(self, entry: _Entry, value: str, path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(prefix=".part-", dir=path.parent)
            os.close(fd)
            try:
                download(value, Path(temp))
                os.replace(temp, path)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temp)
            entry.size = path.stat().st_size
        except BaseException as exc:
            entry.error = exc if isinstance(exc, Exception) else RuntimeError(str(exc))
            with self._lock:  # not cached: the next fetch downloads again
                for key, known in list(self._entries.items()):
                    if known is entry:
                        del self._entries[key]
            raise
        finally:
            entry.ready.set()

    def _release(self, user: str | None, value: str, entry: _Entry) -> None:
        with self._lock:
            entry.in_use -= 1
            total = sum(e.size for e in self._entries.values())
            for key, known in list(self._entries.items()):  # least recently used first
                if total <= self.size_limit:
                    break
                if known.in_use or not known.ready.is_set():
                    continue
                del self._entries[key]
                total -= known.size
                with contextlib.suppress(FileNotFoundError):
                    self._path(key[0], known.filename).unlink()

    def _path(self, user: str | None, filename: str) -> Path:
        return (self.directory / user if user else self.directory) / filename


def _short_basename(value: str) -> str:
    """The URI's basename, at most 21 characters keeping the extension (as Mesos'
    `nextFilename`): for people looking at the cache, and for extraction by extension."""
    name = os.path.basename(unquote(urlparse(value).path)) or "uri"
    return name if len(name) <= 20 else f"{name[:10]}_{name[-10:]}"


def fetch_all(
    uris: list[dict], sandbox: Path, cache: FetcherCache | None = None, user: str | None = None
) -> list[Path]:
    """Fetch every URI in order; the first failure stops the launch, as in Mesos. URIs with
    `cache: true` go through `cache` when there is one."""
    return [fetch(uri, sandbox, cache, user) for uri in uris]


def fetch(
    uri: dict, sandbox: Path, cache: FetcherCache | None = None, user: str | None = None
) -> Path:
    """Fetch one `CommandInfo.URI` into `sandbox`; returns the file it wrote."""
    value = uri.get("value", "")
    try:
        if cache is not None and uri.get("cache", False):
            return cache.fetch(uri, sandbox, user)
        target = sandbox / output_name(uri)
        download(value, target)
        return deliver(uri, target, sandbox, from_cache=False)
    except (
        OSError,
        ValueError,
        requests.RequestException,
        tarfile.TarError,
        zipfile.BadZipFile,
    ) as exc:
        raise FetchError(f"Failed to fetch '{value}': {exc}") from exc


def deliver(uri: dict, source: Path, sandbox: Path, from_cache: bool) -> Path:
    """What Mesos' fetcher does after the download (src/launcher/fetcher.cpp, `fetchBypassing
    Cache` and `fetchFromCache`): `executable` chmods the sandbox's copy; an archive with
    `extract` is unpacked into the sandbox (from the cache file: without a copy of the archive
    in the sandbox); anything else is copied from the cache under `output_file` or its name.
    `source` is the downloaded file: in the cache, or already in the sandbox."""
    target = sandbox / output_name(uri)
    if uri.get("executable", False):
        if from_cache:
            copy_into(source, target)
        target.chmod(0o755)
        return target
    if uri.get("extract", True) and is_archive(source.name):  # the cache file keeps the suffix
        extract(source, sandbox)
        return sandbox if from_cache else target
    if from_cache:
        copy_into(source, target)
    return target


def copy_into(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)


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


# The fetcher program exits 1 for any failure ("Exit code: 0 if entirely successful,
# otherwise 1": apache/mesos src/launcher/fetcher.cpp, above `main`).
FETCHER_FAILED_STATUS = 1
# Where its glog lines say they come from (src/launcher/fetcher.cpp at apache/mesos c1b42f7:
# `LOG(INFO) << "Fetching URI '…'"` in `fetch`, the `EXIT(EXIT_FAILURE)` of `main`'s loop).
_FETCHING_AT, _FETCHED_AT, _DONE_AT, _EXIT_AT = (
    "fetcher.cpp:459",
    "fetcher.cpp:618",
    "fetcher.cpp:623",
    "fetcher.cpp:615",
)


def glog_line(severity: str, where: str, message: str) -> str:
    """One line as glog writes it, `Lmmdd hh:mm:ss.uuuuuu threadid file:line] message`
    (google/glog src/logging.cc, `LogMessage::Init`); `severity` is I, W, E or F."""
    now = datetime.datetime.now()
    return f"{severity}{now:%m%d %H:%M:%S.%f} {threading.get_native_id():>5} {where}] {message}\n"


def run_fetcher(
    uris: list[dict], sandbox: Path, cache: FetcherCache | None = None, user: str | None = None
) -> int:
    """What the agent does to fetch a task's URIs (apache/mesos src/slave/containerizer/
    fetcher.cpp, `FetcherProcess::run`): create (truncate) the sandbox's `stdout` and `stderr`
    and, if there are URIs, run the fetcher program with its output there; returns its exit
    status, 0 or `FETCHER_FAILED_STATUS`.

    The program (src/launcher/fetcher.cpp, `main`) logs to stderr (no `--log_dir`:
    src/logging/logging.cpp, `initialize`, sets `logtostderr`) "Fetching URI '<uri>'" and
    "Fetched '<uri>' to '<path>'" for each URI, "Successfully fetched all URIs into
    '<sandbox>'" at the end, and stops at the first failure with `EXIT(EXIT_FAILURE) <<
    "Failed to fetch '<uri>': " + why`: stout's `EXIT` writes an ERROR line "EXIT with
    status 1: Failed to fetch '<uri>': <why>" (3rdparty/stout/include/stout/exit.hpp,
    `__Exit`) and exits 1. Blocking."""
    sandbox.mkdir(parents=True, exist_ok=True)
    (sandbox / "stdout").write_bytes(b"")
    with open(sandbox / "stderr", "w") as stderr:  # O_TRUNC, as `run` opens it
        for uri in uris:
            value = uri.get("value", "")
            stderr.write(glog_line("I", _FETCHING_AT, f"Fetching URI '{value}'"))
            try:
                fetched = fetch(uri, sandbox, cache, user)
            except FetchError as exc:
                line = f"EXIT with status {FETCHER_FAILED_STATUS}: {exc}"
                stderr.write(glog_line("E", _EXIT_AT, line))
                return FETCHER_FAILED_STATUS
            stderr.write(glog_line("I", _FETCHED_AT, f"Fetched '{value}' to '{fetched}'"))
        if uris:
            done = f"Successfully fetched all URIs into '{sandbox}'"
            stderr.write(glog_line("I", _DONE_AT, done))
    return 0


def launch_failed_message(container_id: str, status: int) -> str:
    """The agent's TASK_FAILED message for a fetcher that exited with `status` (not 0).

    `FetcherProcess::run` fails the launch with "Failed to fetch all URIs for container
    '<container id>': " + `WSTRINGIFY(status)` ("exited with status N": src/common/
    status_utils.hpp) and logs the fetcher's stderr in the agent's own log only;
    `Slave::executorLaunched` (src/slave/slave.cpp) makes the container's termination
    TASK_FAILED, REASON_CONTAINER_LAUNCH_FAILED, "Failed to launch container: " + that
    failure, which `Slave::sendExecutorTerminatedStatusUpdate` sends as the task's update
    from SOURCE_SLAVE (v1: SOURCE_AGENT); the container's destruction adds no message."""
    return (
        "Failed to launch container: Failed to fetch all URIs for container "
        f"'{container_id}': exited with status {status}"
    )
