"""The start-up step every entry point runs before Django loads the settings.

Settings must not touch the disk when imported (a docs build, a linter or a
test importing them should not create directories or secrets), so the
filesystem work lives here: `manage.py`, `easymemory`, the ASGI app and the
Celery app call `data_dir_prepare()` first.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path

from config.env import env_choice, env_str

DEFAULT_DATA_DIR = "~/.easymemory/data"
SECRET_KEY_FILE = "secret_key"  # noqa: S105 - a file name, not a secret


def data_dir_from_env() -> Path:
    return Path(env_str("EASYMEMORY_DATA_DIR", DEFAULT_DATA_DIR)).expanduser().resolve()


def metrics_dir_from_env(data_dir: Path) -> Path:
    """prometheus-client's multiprocess directory: every process of one machine shares it."""
    chosen = env_str("PROMETHEUS_MULTIPROC_DIR") or env_str("EASYMEMORY_METRICS_DIR")
    return Path(chosen or data_dir / "metrics").expanduser().resolve()


def secret_key_read(data_dir: Path) -> str:
    """The single-user secret key written by `data_dir_prepare`, or "" before the first start."""
    try:
        return (data_dir / SECRET_KEY_FILE).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return ""


def data_dir_prepare() -> Path:
    """Create the data directory (and its static/ folder) and, in single-user mode without a
    configured key, the secret key: once, readable by the owner only. Safe to call from several
    processes at once: the key is written to a private temporary file and linked into place, so
    no process ever reads a half-written key and the first writer wins."""
    data_dir = data_dir_from_env()
    (data_dir / "static").mkdir(parents=True, exist_ok=True)
    metrics_dir_from_env(data_dir).mkdir(parents=True, exist_ok=True)
    single_user = env_choice("EASYMEMORY_MODE", "single", {"single", "team"}) == "single"
    key_file = data_dir / SECRET_KEY_FILE
    if single_user and not env_str("EASYMEMORY_SECRET_KEY") and not key_file.exists():
        descriptor, temporary = tempfile.mkstemp(dir=data_dir, prefix=".secret_key.")  # mode 0600
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                handle.write(secrets.token_urlsafe(50))
            os.link(temporary, key_file)
        except FileExistsError:
            pass
        finally:
            os.unlink(temporary)
    return data_dir
