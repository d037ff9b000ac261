"""Tag keys equal ignoring case are refused: IAM condition keys ignore case."""

from __future__ import annotations

import pytest

from airgate.environments.store import check_tag_keys
from airgate.errors import ValidationException


@pytest.mark.parametrize(
    ("keys", "existing"),
    [(["team", "Team"], []), (["ENV"], ["Env"]), (["owner", "env"], ["Env", "team"]),
     (["ÉTÉ"], ["été"])],
    ids=["in-request", "against-existing", "one-of-several", "non-ascii"],
)
def test_refused(keys: list[str], existing: list[str]) -> None:
    with pytest.raises(ValidationException, match="differs only in case"):
        check_tag_keys(keys, existing)


@pytest.mark.parametrize(
    ("keys", "existing"),
    [(["Env", "team"], []), (["Env"], ["Env"]), (["Env"], ["Env", "env"]),
     (["env", "Env"], ["Env", "env"])],
    ids=["distinct", "same-case-update", "update-in-a-store-from-before",
         "both-updates-in-a-store-from-before"],
)
def test_allowed(keys: list[str], existing: list[str]) -> None:
    check_tag_keys(keys, existing)
