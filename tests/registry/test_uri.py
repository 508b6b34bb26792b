"""Model URIs: every accepted form, and malformed ones rejected with the expected forms."""

from __future__ import annotations

import pytest

from loopml.errors import InvalidInput
from loopml.registry import parse_model_uri


@pytest.mark.parametrize(
    ("uri", "parsed"),
    [
        ("models:/churn/3", ("churn", 3, None)),
        ("models:/churn@production", ("churn", None, "production")),
        ("models:/churn", ("churn", None, None)),
        ("churn/12", ("churn", 12, None)),
        ("churn@production", ("churn", None, "production")),
        ("churn", ("churn", None, None)),
        ("churn@latest", ("churn", None, None)),
        ("fraud.v2-eu_west", ("fraud.v2-eu_west", None, None)),
    ],
)
def test_accepted_forms(uri: str, parsed: tuple[str, int | None, str | None]) -> None:
    assert parse_model_uri(uri) == parsed


@pytest.mark.parametrize(
    "uri",
    [
        "",
        "models:/",
        "models://churn/3",
        "models:churn",
        "churn/0",
        "churn/x",
        "churn/3/4",
        "churn/",
        "churn@",
        "churn@3",
        "churn@prod/3",
        "@production",
        " churn",
        "x" * 257,
    ],
)
def test_malformed_uris_list_the_expected_forms(uri: str) -> None:
    with pytest.raises(InvalidInput, match=r"expected models:/<name>/<version>"):
        parse_model_uri(uri)


def test_a_non_string_is_rejected() -> None:
    with pytest.raises(InvalidInput, match="must be a string"):
        parse_model_uri(3)  # type: ignore[arg-type]
