"""Optional extras (salas._extras): the core imports without them, and their absence is named."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from salas._extras import extra_needed

# Refuses the optional drivers before salas is imported, as a core-only install would.
BLOCKED_IMPORT = textwrap.dedent(
    """
    import sys
    from importlib.abc import MetaPathFinder

    class Refuse(MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("asyncpg", "redis"):
                raise ModuleNotFoundError(f"blocked: {name}", name=name)
            return None

    for name in [m for m in sys.modules if m.split(".")[0] in ("asyncpg", "redis")]:
        del sys.modules[name]
    sys.meta_path.insert(0, Refuse())

    import salas, salas.store, salas.adapter, salas.recovery, salas.chat, salas.cli
    from salas.adapter import redis_adapter
    from salas.store import open_store

    try:
        redis_adapter()
    except ImportError as exc:
        print("redis:", exc)
    try:
        open_store("postgresql://localhost/test")
    except salas.store.StoreError as exc:
        print("postgres:", exc)
    try:
        salas.cli.parse_settings(["serve", "--workers", "2"], {})
    except salas.cli.ConfigError as exc:
        print("workers:", exc)
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("asyncpg", "redis"))
    print("loaded:", loaded)
    """
)


def test_extra_needed_names_the_pip_command() -> None:
    """The message says what needs the extra and how to install it."""
    assert extra_needed("PostgreSQL support", "postgres") == (
        "PostgreSQL support needs the 'postgres' extra: pip install 'salas[postgres]'"
    )


def test_salas_imports_without_the_optional_drivers() -> None:
    """With asyncpg and redis refused, every package imports and using them (--workers above
    1 included) names the extra."""
    done = subprocess.run(
        [sys.executable, "-c", BLOCKED_IMPORT], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "redis: The Redis adapter needs the 'redis' extra: pip install 'salas[redis]'" in lines
    assert (
        "postgres: PostgreSQL support needs the 'postgres' extra: pip install 'salas[postgres]'"
        in lines
    )
    # The workers' client of their local hub (or of Redis) is redis-py.
    assert (
        "workers: --workers: The Redis adapter needs the 'redis' extra: pip install 'salas[redis]'"
        in lines
    )
    assert "loaded: []" in lines
