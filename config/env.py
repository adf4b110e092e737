"""Typed parsers for EASYMEMORY_* environment variables.

Every parser fails loudly with the variable's name when a value cannot be
parsed: a typo in a LAN server's configuration must stop start-up, not fall
back to a default silently.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}


class ConfigError(ValueError):
    """A configuration variable holds a value that cannot be used."""


def _raw(name: str, environ: dict[str, str] | None = None) -> str | None:
    env = os.environ if environ is None else environ
    file_name = env.get(f"{name}_FILE")
    if file_name:
        try:
            return Path(file_name).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{name}_FILE={file_name!r} cannot be read: {exc}") from exc
    return env.get(name)


def env_str(name: str, default: str = "", environ: dict[str, str] | None = None) -> str:
    value = _raw(name, environ)
    return default if value is None else value


def env_bool(name: str, default: bool = False, environ: dict[str, str] | None = None) -> bool:
    value = _raw(name, environ)
    if value is None:
        return default
    word = value.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ConfigError(f"{name}={value!r} is not a boolean (use true/false)")


def env_int(
    name: str,
    default: int,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    environ: dict[str, str] | None = None,
) -> int:
    value = _raw(name, environ)
    if value is None or value.strip() == "":
        return default
    try:
        number = int(value.strip())
    except ValueError as exc:
        raise ConfigError(f"{name}={value!r} is not an integer") from exc
    if minimum is not None and number < minimum:
        raise ConfigError(f"{name}={number} is below the minimum {minimum}")
    if maximum is not None and number > maximum:
        raise ConfigError(f"{name}={number} is above the maximum {maximum}")
    return number


def env_float(name: str, default: float, environ: dict[str, str] | None = None) -> float:
    value = _raw(name, environ)
    if value is None or value.strip() == "":
        return default
    try:
        return float(value.strip())
    except ValueError as exc:
        raise ConfigError(f"{name}={value!r} is not a number") from exc


def env_list(name: str, default: list[str] | None = None, environ: dict[str, str] | None = None) -> list[str]:
    value = _raw(name, environ)
    if value is None:
        return list(default or [])
    return [part.strip() for part in value.split(",") if part.strip()]


def env_choice(name: str, default: str, choices: set[str], environ: dict[str, str] | None = None) -> str:
    value = env_str(name, default, environ).strip().lower()
    if value not in choices:
        raise ConfigError(f"{name}={value!r} must be one of {', '.join(sorted(choices))}")
    return value


# --- declarations -------------------------------------------------------------------
# Each setting is declared once, beside the settings line that reads it, with its type,
# default, bounds and help. The configuration page (docs/configuration.md) is generated
# from these declarations by `python -m config.configdoc`, and a test fails when the page
# is stale or when code reads a variable that was never declared.


@dataclass(frozen=True)
class Setting:
    name: str
    group: str
    kind: str
    default: str
    help: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()


REGISTRY: dict[str, Setting] = {}
GROUPS: dict[str, str] = {}


def _show(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def setting_declare(setting: Setting) -> None:
    """Record one declaration; declaring a name twice differently is a programming error."""
    known = REGISTRY.get(setting.name)
    if known is not None and known != setting:
        raise ConfigError(f"{setting.name} is declared twice with different definitions")
    REGISTRY[setting.name] = setting


class SettingGroup:
    """The settings of one concern. Each method declares a variable and returns its parsed value.

    `shown_default` replaces the default in the documentation when the real default depends
    on other settings (e.g. on the mode).
    """

    def __init__(self, title: str, intro: str = "") -> None:
        self.title = title
        GROUPS.setdefault(title, intro)

    def _declare(self, name: str, kind: str, default: object, help: str, **extra: Any) -> None:
        setting_declare(Setting(name=name, group=self.title, kind=kind, default=_show(default), help=help, **extra))

    def string(self, name: str, default: str = "", *, help: str, shown_default: str | None = None) -> str:
        self._declare(name, "string", default if shown_default is None else shown_default, help)
        return env_str(name, default)

    def boolean(self, name: str, default: bool = False, *, help: str) -> bool:
        self._declare(name, "boolean", default, help)
        return env_bool(name, default)

    def integer(
        self,
        name: str,
        default: int,
        *,
        help: str,
        minimum: int | None = None,
        maximum: int | None = None,
        shown_default: str | None = None,
    ) -> int:
        shown = default if shown_default is None else shown_default
        self._declare(name, "integer", shown, help, minimum=minimum, maximum=maximum)
        return env_int(name, default, minimum=minimum, maximum=maximum)

    def number(
        self, name: str, default: float, *, help: str, minimum: float | None = None, maximum: float | None = None
    ) -> float:
        self._declare(name, "number", default, help, minimum=minimum, maximum=maximum)
        return env_float_bounded(name, default, minimum=minimum, maximum=maximum)

    def csv(
        self, name: str, default: list[str] | None = None, *, help: str, shown_default: str | None = None
    ) -> list[str]:
        self._declare(name, "list", default or [] if shown_default is None else shown_default, help)
        return env_list(name, default)

    def choice(self, name: str, default: str, choices: set[str], *, help: str) -> str:
        self._declare(name, "choice", default, help, choices=tuple(sorted(choices)))
        return env_choice(name, default, choices)


def env_float_bounded(
    name: str,
    default: float,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    environ: dict[str, str] | None = None,
) -> float:
    value = env_float(name, default, environ)
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name}={value} is below the minimum {_show(minimum)}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name}={value} is above the maximum {_show(maximum)}")
    return value
