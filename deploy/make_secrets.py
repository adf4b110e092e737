"""Write the secrets compose.yaml reads: `python3 deploy/make_secrets.py [--dir secrets]`.

Each secret is a file of its own (Docker secrets). Existing files are kept, so running it again
never changes a password a running database already uses. Standard library only: it runs before
anything is installed.

The directory is private to its owner (0700); the files in it are world-readable (0644) because the
containers read them as unprivileged users of their own (PostgreSQL, Redis, EasyMemory's uid 10001),
and a bind-mounted file keeps its mode but not the directory that protects it on the host.
"""

from __future__ import annotations

import argparse
import secrets
from pathlib import Path
from urllib.parse import quote


def secrets_write(directory: Path) -> list[str]:
    """Create the missing secret files under `directory`; returns the names it wrote."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)

    def read_or_make(name: str, make: str) -> tuple[str, bool]:
        path = directory / name
        if path.exists():
            return path.read_text(encoding="utf-8").strip(), False
        path.write_text(make, encoding="utf-8")
        path.chmod(0o644)
        return make, True

    written: list[str] = []
    db_password, new = read_or_make("db_password", secrets.token_urlsafe(24))
    written += ["db_password"] if new else []
    redis_password, new = read_or_make("redis_password", secrets.token_urlsafe(24))
    written += ["redis_password"] if new else []
    for name, value in {
        "database_url": f"postgresql://easymemory:{quote(db_password, safe='')}@db:5432/easymemory",
        "redis_url": f"redis://:{quote(redis_password, safe='')}@redis:6379/0",
        "secret_key": secrets.token_urlsafe(50),
    }.items():
        if read_or_make(name, value)[1]:
            written.append(name)
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path(__file__).resolve().parent.parent / "secrets")
    args = parser.parse_args()
    written = secrets_write(args.dir)
    print(f"{args.dir}: wrote {', '.join(written) if written else 'nothing (all secrets exist)'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
