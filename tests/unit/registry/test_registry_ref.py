"""Model references: name, name@alias, name/VERSION."""

from __future__ import annotations

import pytest

from llmos.errors import RegistryError
from llmos.registry import ModelRef, parse_ref


@pytest.mark.parametrize(("text", "ref"), [
    ("sentiment", ModelRef("sentiment")),
    ("sentiment@production", ModelRef("sentiment", alias="production")),
    ("sentiment/3", ModelRef("sentiment", version="3")),
    ("my.model-v2_x/12", ModelRef("my.model-v2_x", version="12")),
    ("models:/sentiment@candidate", ModelRef("sentiment", alias="candidate")),
    (" quickstart ", ModelRef("quickstart")),
])
def test_parse(text: str, ref: ModelRef) -> None:
    assert parse_ref(text) == ref


@pytest.mark.parametrize("text", ["", "@prod", "name@", "name/", "name/0", "name/v3", "name@1x",
                                  "a b", "name@prod/3", "-name", "name/3/4"])
def test_bad_syntax_names_the_accepted_forms(text: str) -> None:
    with pytest.raises(RegistryError, match="is not a model reference") as err:
        parse_ref(text)
    assert "NAME@ALIAS" in (err.value.hint or "") and "NAME/VERSION" in (err.value.hint or "")


@pytest.mark.parametrize("text", ["sentiment", "sentiment@production", "sentiment/3"])
def test_str_round_trips(text: str) -> None:
    assert str(parse_ref(text)) == text
