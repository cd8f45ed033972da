"""Values typed by a person (params at `mora init`, wizard answers) checked by type."""

from __future__ import annotations

import pytest

from mora_dsl.manifest import TypeSpec
from mora_dsl.validate import InvalidValue, parse_value


def spec(name: str, **kw: object) -> TypeSpec:
    return TypeSpec(name=name, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("typ", "text", "expected"),
    [
        (spec("string"), " hello ", "hello"),
        (spec("int"), "42", 42),
        (spec("port"), "8080", 8080),
        (spec("bool"), "yes", True),
        (spec("bool"), "off", False),
        (spec("email"), "admin@example.com", "admin@example.com"),
        (spec("url"), "https://example.com/x", "https://example.com/x"),
        (spec("domain"), "Home.Example.com.", "home.example.com"),
        (spec("path"), "/srv/media", "/srv/media"),
        (spec("one_of", choices=["a", "b"]), "b", "b"),
        (spec("list", item=spec("string")), "a, b,c", ["a", "b", "c"]),
        (spec("list", item=spec("port")), "[80, 443]", [80, 443]),
        (spec("map", item=spec("int")), '{"a": 1}', {"a": 1}),
        (spec("secret"), " keep spaces ", " keep spaces "),
    ],
)
def test_valid_values(typ: TypeSpec, text: str, expected: object) -> None:
    assert parse_value(typ, text) == expected


@pytest.mark.parametrize(
    ("typ", "text", "message"),
    [
        (spec("int"), "two", '"two" is not a whole number'),
        (spec("port"), "70000", "70000 is not a port (1–65535)"),
        (spec("bool"), "maybe", '"maybe" is not yes or no'),
        (spec("email"), "not-an-email", '"not-an-email" is not an e-mail address'),
        (spec("domain"), "bad domain", '"bad domain" is not a domain name'),
        (spec("path"), "relative/x", '"relative/x" is not an absolute path'),
        (spec("one_of", choices=["a", "b"]), "c", '"c" is not one of "a", "b"'),
        (spec("email"), "", "enter a value"),
        (spec("secret"), "", "enter a value"),
        (spec("list", item=spec("port")), "[80, 0]", "0 is not a port (1–65535)"),
    ],
)
def test_invalid_values(typ: TypeSpec, text: str, message: str) -> None:
    with pytest.raises(InvalidValue) as err:
        parse_value(typ, text)
    assert str(err.value) == message
