"""Build hook: the wheel and the sdist carry the official Socket.IO browser client.

All metadata lives in pyproject.toml; this file only adds one step to `build_py` and `sdist`.
`salas serve` answers /socket.io/socket.io.js with npm's `socket.io-client` bundle (the
version package-lock.json pins), so an installed salas needs no Node.js and no checkout.
The files are copied into src/salas/assets/socket.io-client/ (ignored by git), with the
client's LICENSE beside them, from the first of:

1. node_modules/socket.io-client/dist (a checkout after `npm ci` / scripts/setup.sh);
2. that folder itself, when it already holds the pinned version (an unpacked sdist);
3. `npm pack socket.io-client@<pinned>`, checked against package-lock.json's integrity hash.

Without any of them (no npm on PATH) the build stops with a message that says what to install.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist
from setuptools.errors import SetupError

ROOT = Path(__file__).resolve().parent
PACKAGE = "socket.io-client"
TARGET = ROOT / "src" / "salas" / "assets" / PACKAGE
# What salas serves under /socket.io/ (salas.engine.routes), and the client's licence.
CLIENT_FILES = (
    "socket.io.js",
    "socket.io.js.map",
    "socket.io.min.js",
    "socket.io.min.js.map",
    "socket.io.esm.min.js",
    "socket.io.esm.min.js.map",
)
REQUIRED = ("socket.io.js", "socket.io.min.js", "LICENSE")
_BANNER_VERSION = re.compile(rb"Socket\.IO v(\d+\.\d+\.\d+\S*)")


def pinned_client() -> tuple[str, str]:
    """(version, integrity) of socket.io-client as package-lock.json pins it."""
    lock_path = ROOT / "package-lock.json"
    if not lock_path.is_file():
        raise SetupError(f"{lock_path} is missing: it pins the browser client the wheel carries")
    entry = json.loads(lock_path.read_text())["packages"].get(f"node_modules/{PACKAGE}")
    if not entry:
        raise SetupError(f"package-lock.json does not pin {PACKAGE}")
    return entry["version"], entry["integrity"]


def bundled_version(folder: Path) -> str | None:
    """The client version a folder holds (from socket.io.js's banner), None if incomplete."""
    if not all((folder / name).is_file() for name in REQUIRED):
        return None
    match = _BANNER_VERSION.search((folder / "socket.io.js").read_bytes()[:200])
    return match.group(1).decode() if match else None


def _install(dist: Path, licence: Path) -> None:
    """Replace TARGET with the client files of `dist` and the licence."""
    if TARGET.exists():
        shutil.rmtree(TARGET)
    TARGET.mkdir(parents=True)
    for name in CLIENT_FILES:
        if (dist / name).is_file():
            shutil.copyfile(dist / name, TARGET / name)
    shutil.copyfile(licence, TARGET / "LICENSE")


def _npm_pack(version: str, integrity: str) -> None:
    """Fetch the pinned tarball with npm, check its hash, unpack dist/ and LICENSE."""
    npm = shutil.which("npm")
    if npm is None:
        raise SetupError(
            f"salas' wheel carries the official browser client ({PACKAGE} {version}), but "
            f"node_modules/{PACKAGE} is not installed and npm is not on PATH to fetch it. "
            "Install Node.js with npm (e.g. apt-get install npm) or run `npm ci` in the "
            "checkout, then build again."
        )
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [npm, "pack", f"{PACKAGE}@{version}", "--silent", "--pack-destination", tmp],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        tarballs = list(Path(tmp).glob("*.tgz"))
        if len(tarballs) != 1:
            raise SetupError(f"npm pack {PACKAGE}@{version} gave {len(tarballs)} tarballs")
        data = tarballs[0].read_bytes()
        algorithm, _, expected = integrity.partition("-")
        actual = base64.b64encode(hashlib.new(algorithm, data).digest()).decode()
        if actual != expected:
            raise SetupError(f"{tarballs[0].name} does not match package-lock.json's {integrity}")
        # Only the files salas serves, each read by its exact name (no paths from the archive).
        unpacked = Path(tmp) / "unpacked"
        (unpacked / "dist").mkdir(parents=True)
        with tarfile.open(tarballs[0]) as archive:
            for name in (*(f"dist/{file}" for file in CLIENT_FILES), "LICENSE"):
                try:
                    member = archive.extractfile(f"package/{name}")
                except KeyError:
                    continue
                if member is not None:
                    (unpacked / name).write_bytes(member.read())
        _install(unpacked / "dist", unpacked / "LICENSE")


def ensure_client() -> None:
    """Fill TARGET with the pinned browser client, or raise SetupError saying why not."""
    version, integrity = pinned_client()
    installed = ROOT / "node_modules" / PACKAGE
    if (installed / "package.json").is_file():
        found = json.loads((installed / "package.json").read_text())["version"]
        if found != version:
            raise SetupError(
                f"node_modules has {PACKAGE} {found} but package-lock.json pins {version}: "
                "run `npm ci`, then build again"
            )
        _install(installed / "dist", installed / "LICENSE")
    elif bundled_version(TARGET) != version:
        _npm_pack(version, integrity)
    if bundled_version(TARGET) != version:
        raise SetupError(f"{TARGET} does not hold {PACKAGE} {version} after copying it")


class BuildPyWithClient(build_py):
    """build_py that first puts the browser client into the package data."""

    def run(self) -> None:
        if not self.editable_mode:  # an editable install serves the checkout's node_modules
            ensure_client()
            # egg_info may have listed the package data before the client was there.
            self.__dict__.pop("data_files", None)
        super().run()


class SdistWithClient(sdist):
    """sdist that carries the browser client, so a wheel builds from it without npm."""

    def run(self) -> None:
        ensure_client()
        super().run()


# Present before setuptools looks for packages, so that the first build finds the folder as
# part of `salas` (as `chat/static` is) rather than warning about an unlisted package.
TARGET.mkdir(parents=True, exist_ok=True)
setup(cmdclass={"build_py": BuildPyWithClient, "sdist": SdistWithClient})
