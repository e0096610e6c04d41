"""Config dataclasses from mappings: errors always name the dotted key."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from common.configio import (
    ConfigError,
    check_between,
    check_range,
    from_mapping,
    parse_overrides,
    to_dict,
)


@dataclass
class Inner:
    frac: float = 0.5
    pair: tuple[float, float] = (1.0, 2.0)

    def validate(self, prefix: str) -> None:
        check_between(self.frac, f"{prefix}.frac", 0.0, 1.0, "a fraction")
        check_range(self.pair, f"{prefix}.pair", lo=0.0)


@dataclass
class Outer:
    n: int = 1
    inner: Inner = field(default_factory=Inner)


def test_valid_mapping_builds_nested_dataclasses():
    cfg = from_mapping(Outer, {"n": 3, "inner": {"frac": 1.0, "pair": [0.0, 4]}})
    assert cfg.n == 3 and cfg.inner.frac == 1.0 and cfg.inner.pair == (0.0, 4.0)


@pytest.mark.parametrize(
    ("data", "key", "text"),
    [
        ({"inner": {"frac": 1.5}}, "inner.frac", "must be in [0, 1] (a fraction; got 1.5)"),
        ({"inner": {"pair": [3, 1]}}, "inner.pair", "low must be <= high"),
        ({"inner": {"pair": [-1, 1]}}, "inner.pair", "low must be >= 0.0"),
        ({"inner": {"fracc": 0.1}}, "inner.fracc", "unknown key"),
        ({"n": 2.5}, "n", "expected an integer"),
        ({"n": True}, "n", "expected an integer"),
        ({"inner": 3}, "inner", "expected a mapping"),
    ],
)
def test_errors_name_the_key(data, key, text):
    with pytest.raises(ConfigError) as info:
        from_mapping(Outer, data)
    assert info.value.key == key
    assert text in str(info.value)


@dataclass
class WithSections:
    """A level whose sub-sections come from a table (like input.<kind> of the build config)."""

    name: str = "a"
    sections: dict = field(default_factory=dict)

    @classmethod
    def config_sections(cls) -> dict[str, type]:
        return {"alpha": Inner, "beta": Outer}


def test_registered_sections_are_keys_built_validated_and_dumped():
    cfg = from_mapping(WithSections, {"alpha": {"frac": 0.25}}, "top")
    assert cfg.sections["alpha"] == Inner(frac=0.25)
    assert cfg.sections["beta"] == Outer()  # absent section: its defaults
    dumped = to_dict(cfg)
    assert set(dumped) == {"name", "alpha", "beta"} and dumped["alpha"]["frac"] == 0.25
    assert from_mapping(WithSections, dumped, "top") == cfg
    with pytest.raises(ConfigError) as info:
        from_mapping(WithSections, {"beta": {"inner": {"frac": 2.0}}}, "top")
    assert info.value.key == "top.beta.inner.frac"
    with pytest.raises(ConfigError) as info:
        from_mapping(WithSections, {"gamma": {}}, "top")
    assert info.value.key == "top.gamma" and "alpha, beta, name" in str(info.value)


def test_parse_overrides_builds_nested_yaml_values():
    got = parse_overrides(["a.b=1e-3", "a.c=[1, 2]", "d=true", "a.b=2"])
    assert got == {"a": {"b": 2, "c": [1, 2]}, "d": True}
    with pytest.raises(ConfigError) as info:
        parse_overrides(["novalue"])
    assert info.value.key == "novalue"
    with pytest.raises(ConfigError) as info:
        parse_overrides(["x=[1, 2"])
    assert info.value.key == "x"
