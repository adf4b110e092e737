from __future__ import annotations

import pytest

from config.env import ConfigError, env_bool, env_choice, env_float, env_int, env_list, env_str


def test_values_come_from_the_variable_or_its_file(tmp_path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    assert env_str("EASYMEMORY_X", environ={"EASYMEMORY_X_FILE": str(secret)}) == "s3cret"
    assert env_str("EASYMEMORY_X", "d", environ={}) == "d"
    with pytest.raises(ConfigError, match="EASYMEMORY_X_FILE"):
        env_str("EASYMEMORY_X", environ={"EASYMEMORY_X_FILE": str(tmp_path / "missing")})


def test_parsers_fail_loudly_naming_the_variable() -> None:
    assert env_bool("B", environ={"B": "yes"}) is True
    assert env_bool("B", True, environ={"B": "off"}) is False
    with pytest.raises(ConfigError, match="B="):
        env_bool("B", environ={"B": "maybe"})
    assert env_int("N", 3, environ={}) == 3
    with pytest.raises(ConfigError, match="N="):
        env_int("N", 3, environ={"N": "three"})
    with pytest.raises(ConfigError, match="minimum"):
        env_int("N", 3, minimum=1, environ={"N": "0"})
    assert env_float("F", 1.0, environ={"F": "0.25"}) == 0.25
    assert env_list("L", environ={"L": "a, b,,c"}) == ["a", "b", "c"]
    assert env_choice("C", "single", {"single", "team"}, environ={"C": "TEAM"}) == "team"
    with pytest.raises(ConfigError, match="must be one of"):
        env_choice("C", "single", {"single", "team"}, environ={"C": "cluster"})
