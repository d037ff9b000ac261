"""The bootstrap administrator: made once, and never handed to another user's name."""

from __future__ import annotations

from pathlib import Path

import pytest

from airgate.config import ConfigError, Settings
from airgate.server import BOOTSTRAP_USER, ensure_bootstrap_admin, open_state


def test_a_user_named_like_admin_in_another_case_is_not_made_administrator(
        tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    db, identities, _ = open_state(settings)
    try:
        identities.create_user("Admin")  # an operator's, before airgate's first start
        with pytest.raises(ConfigError, match="'Admin' takes the bootstrap administrator"):
            ensure_bootstrap_admin(settings, identities)
        assert identities.list_inline_policies("user", "Admin") == []
        assert identities.list_access_keys("Admin") == []
        assert not settings.credentials_file.exists()
    finally:
        db.close()


def test_the_administrator_is_made_once(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    db, identities, _ = open_state(settings)
    try:
        first = ensure_bootstrap_admin(settings, identities)
        assert ensure_bootstrap_admin(settings, identities) == first
        assert first["UserName"] == BOOTSTRAP_USER
        assert [k["AccessKeyId"] for k in identities.list_access_keys(BOOTSTRAP_USER)] == [
            first["AccessKeyId"]]
    finally:
        db.close()
