"""`make dist`: the release artifacts the Universe package runs, and `resource.json` naming them.

- `calico-dcos-<version>-sha256-<hex>.pyz`: the scheduler and every dependency in one
  executable zip (shiv; `--reproducible`, so the same inputs give the same bytes). It runs on
  any Python 3.11 on Linux x86-64 — the package runs it on `python:3.11-slim-bookworm` under
  the Mesos containerizer — and unpacks its native extensions into `$SHIV_ROOT`. pymesos'
  http-parser comes from the wheel `scripts/build_http_parser_wheel.py` builds (`make deps`).
  The file is named by its own sha256: the name in `resource.json` pins the content, the
  app's command checks it before running it, and the Mesos fetcher may cache it safely.
- `calico-dcos-icon-{small,medium,large}.png`: the package's icons (48, 128, 256 pixels,
  the sizes Universe's `v3-resource-schema.json` asks for).

Then `universe/resource.json` gets `assets.uris.calico-dcos-pyz` and `images` under
`--release-url` (where the release's files are published), `universe/package.json` the
project's version, and `universe/config.json` and `marathon.json` are regenerated.

    python -m scripts.dist [--out dist] [--release-url URL] [--universe DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import math
import pathlib
import shutil
import struct
import subprocess
import sys
import tempfile
import tomllib
import zlib

from scripts import universe as u

ROOT = u.ROOT
WHEELHOUSE = ROOT / "build" / "wheelhouse"
PYZ_ASSET = "calico-dcos-pyz"
ICON_SIZES = {"icon-small": 48, "icon-medium": 128, "icon-large": 256}
CALICO_ORANGE = (0xF0, 0x7D, 0x1E)  # the colour of Calico's own logo


def project() -> dict:
    """pyproject.toml's `[project]`: the single source of the version, URLs and maintainers."""
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def version() -> str:
    return project()["version"]


def package_metadata() -> dict:
    """What `package.json` takes from the project: version, maintainer, scm, website."""
    meta = project()
    maintainer = meta["maintainers"][0]
    return {
        "version": meta["version"],
        "maintainer": f"{maintainer['name']} <{maintainer['email']}>",
        "scm": meta["urls"]["Source"],
        "website": meta["urls"]["Homepage"],
    }


def sha256(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


DIST_LOG = ROOT / "build" / "dist.log"


def quietly(argv: list[str], what: str, log: pathlib.Path = DIST_LOG) -> None:
    """Run `argv` with its output (pip's lines about ignored find-links locations, shiv's)
    appended to `log`, as `make`'s other steps do (scripts/quietly); on failure print the
    end of it and where the rest is, and exit with its status."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as handle:
        start = handle.tell()
        handle.write(f"== {what}: {' '.join(argv)}\n")
        handle.flush()
        status = subprocess.run(argv, stdout=handle, stderr=subprocess.STDOUT).returncode
    if status != 0:
        with log.open() as handle:
            handle.seek(start)
            tail = handle.read().splitlines()[-40:]
        print(f"{what} FAILED (exit {status}); its last lines (all of them: {log}):")
        print("\n".join(tail))
        raise SystemExit(status)


def pyz_name(ver: str, digest: str) -> str:
    return f"calico-dcos-{ver}-sha256-{digest}.pyz"


def build_pyz(out_dir: pathlib.Path, wheelhouse: pathlib.Path = WHEELHOUSE) -> pathlib.Path:
    """shiv the project (this checkout) and its dependencies; returns the named artifact."""
    if not any(wheelhouse.glob("http_parser-*.whl")):
        raise SystemExit(f"no http-parser wheel in {wheelhouse}: run `make deps` first")
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="calico-dcos-dist-") as tmp:
        built = pathlib.Path(tmp) / "calico-dcos.pyz"
        quietly(
            [sys.executable, "-m", "shiv", "--reproducible", "--console-script", "calico-dcos",
             "--python", "/usr/bin/env python3", "--output-file", str(built),
             "--find-links", str(wheelhouse), "--only-binary", "http-parser",
             "--disable-pip-version-check", "--quiet", str(ROOT)],
            "the zipapp (shiv, pip)",
        )  # fmt: skip
        target = out_dir / pyz_name(version(), sha256(built))
        for old in out_dir.glob(f"calico-dcos-{version()}-sha256-*.pyz"):
            old.unlink()
        shutil.move(built, target)
    return target


# -- icons ---------------------------------------------------------------------------------


def _png(size: int, pixels: bytes) -> bytes:
    """An 8-bit RGBA PNG (RFC 2083): signature, IHDR, one zlib IDAT, IEND."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    rows = b"".join(b"\0" + pixels[y * size * 4 : (y + 1) * size * 4] for y in range(size))
    header = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows, 9))
        + chunk(b"IEND", b"")
    )


def _icon_coverage(x: float, y: float) -> tuple[bool, bool]:
    """(inside the rounded square, on the white "C"), for a point in [0, 1)²."""
    dx, dy = abs(x - 0.5), abs(y - 0.5)
    corner = 0.18
    qx, qy = max(dx - (0.5 - corner), 0), max(dy - (0.5 - corner), 0)
    in_square = math.hypot(qx, qy) <= corner
    radius = math.hypot(x - 0.5, y - 0.5)
    angle = math.degrees(math.atan2(y - 0.5, x - 0.5))
    on_c = 0.2 <= radius <= 0.32 and abs(angle) > 45
    return in_square, on_c


def icon(size: int, samples: int = 3) -> bytes:
    """An orange rounded square with a white "C", anti-aliased by supersampling."""
    pixels = bytearray()
    for py in range(size):
        for px in range(size):
            square = white = 0
            for sy in range(samples):
                for sx in range(samples):
                    x = (px + (sx + 0.5) / samples) / size
                    y = (py + (sy + 0.5) / samples) / size
                    inside, on_c = _icon_coverage(x, y)
                    square += inside
                    white += inside and on_c
            n = samples * samples
            if square == 0:
                pixels += b"\0\0\0\0"
                continue
            mix = white / square
            rgb = (round(c + (255 - c) * mix) for c in CALICO_ORANGE)
            pixels += bytes((*rgb, round(255 * square / n)))
    return _png(size, bytes(pixels))


def write_icons(out_dir: pathlib.Path) -> dict[str, str]:
    """The icon files; `resource.json` image name -> file name."""
    names = {}
    for image, size in ICON_SIZES.items():
        name = f"calico-dcos-{image}.png"
        (out_dir / name).write_bytes(icon(size))
        names[image] = name
    return names


# -- resource.json -----------------------------------------------------------------------


def current_release_url(universe: pathlib.Path) -> str | None:
    uri = u.resource(universe).get("assets", {}).get("uris", {}).get(PYZ_ASSET)
    return uri.rsplit("/", 1)[0] if uri else None


def stamp(universe: pathlib.Path, release_url: str, pyz: str, icons: dict[str, str]) -> None:
    """Point `resource.json` at the release's files; `package.json` takes the project's
    version, maintainer and URLs."""
    res = u.resource(universe)
    uris = res.setdefault("assets", {}).setdefault("uris", {})
    res["assets"]["uris"] = {PYZ_ASSET: f"{release_url}/{pyz}"} | {
        k: v for k, v in uris.items() if k != PYZ_ASSET
    }
    res["images"] = {image: f"{release_url}/{name}" for image, name in icons.items()}
    u.write_json(universe / "resource.json", res)
    package = u.read_json(universe / "package.json")
    package.update(package_metadata())
    u.write_json(universe / "package.json", package)


def main(argv: list[str] | None = None) -> pathlib.Path:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "dist")
    parser.add_argument("--universe", type=pathlib.Path, default=u.UNIVERSE)
    parser.add_argument(
        "--release-url",
        help="where the release's files are published (default: where resource.json says)",
    )
    args = parser.parse_args(argv)
    release_url = (args.release_url or current_release_url(args.universe) or "").rstrip("/")
    if not release_url:
        parser.error("--release-url is needed: resource.json names no release yet")
    pyz = build_pyz(args.out)
    icons = write_icons(args.out)
    stamp(args.universe, release_url, pyz.name, icons)
    u.regenerate(args.universe)
    print(f"{pyz} ({pyz.stat().st_size:,} bytes) -> {release_url}/{pyz.name}")
    return pyz


if __name__ == "__main__":
    main()
