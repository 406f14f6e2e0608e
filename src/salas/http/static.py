"""Static files: a folder served by URL path, and where the official browser client is."""

from __future__ import annotations

import importlib.resources
import os
from collections.abc import Iterable
from pathlib import Path

__all__ = ["CLIENT_FILES", "StaticFiles", "find_client_dist"]

# A URL path longer than this names no file here: it is "not found" without asking the file
# system (which refuses names over 255 bytes and paths over 4096 with an error).
_MAX_PATH = 1024


class StaticFiles:
    """Files under one folder, by URL path; never anything outside it."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        index: str = "index.html",
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        """`directory` must exist (ValueError otherwise); `index` serves folder URLs;
        `headers` go with every file served (e.g. `salas.http.SECURITY_HEADERS`)."""
        self.directory = Path(directory).resolve()
        self.index = index
        self.headers = list(headers)
        if not self.directory.is_dir():
            raise ValueError(f"static folder does not exist: {self.directory}")

    def lookup(self, url_path: str) -> Path | None:
        """The file `url_path` names inside the folder, or None (missing or outside it).

        Never raises for a hostile path: a NUL byte, a backslash (a separator on Windows, so
        refused everywhere for the same URLs to mean the same files), an over-long path or
        file name, or any other path the file system refuses is None.
        """
        relative = url_path.lstrip("/")
        if not relative or relative.endswith("/"):
            relative += self.index
        if "\x00" in relative or "\\" in relative or len(relative) > _MAX_PATH:
            return None
        try:
            candidate = (self.directory / relative).resolve()
            if not candidate.is_relative_to(self.directory) or not candidate.is_file():
                return None
        except (OSError, ValueError):  # ENAMETOOLONG, ELOOP (a symlink loop), EACCES
            return None
        return candidate


def find_client_dist() -> Path | None:
    """Where the official `socket.io-client` browser bundle is, None when nowhere.

    In order: `SALAS_CLIENT_DIR` when set (an explicit choice wins, and names the only place
    looked at); the copy an installed salas carries (`salas/assets/socket.io-client`, put
    there when the wheel is built); `node_modules/socket.io-client/dist` in the current folder
    or any folder above this package (a checkout after `npm ci`).
    """
    explicit = os.environ.get("SALAS_CLIENT_DIR")
    if explicit:
        path = Path(explicit)
        return path if (path / "socket.io.js").is_file() else None
    bundled = importlib.resources.files("salas") / "assets" / "socket.io-client"
    if isinstance(bundled, Path) and (bundled / "socket.io.js").is_file():
        return bundled
    starts = [Path.cwd(), Path(__file__).resolve()]
    for start in starts:
        for folder in [start, *start.parents]:
            dist = folder / "node_modules" / "socket.io-client" / "dist"
            if (dist / "socket.io.js").is_file():
                return dist
    return None


# The files of the client's dist folder that are served, with their content types.
CLIENT_FILES = {
    "socket.io.js": "application/javascript; charset=utf-8",
    "socket.io.min.js": "application/javascript; charset=utf-8",
    "socket.io.js.map": "application/json",
    "socket.io.min.js.map": "application/json",
    "socket.io.esm.min.js": "application/javascript; charset=utf-8",
    "socket.io.esm.min.js.map": "application/json",
}
