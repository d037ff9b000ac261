"""The forwarded-allow-ips setting: none unless named, addresses or networks only."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from airgate.config import ConfigError, from_environment


def test_no_proxy_is_trusted_by_default(tmp_path: Path) -> None:
    assert from_environment({"AIRGATE_HOME": str(tmp_path)}).forwarded_allow_ips == ()


def test_addresses_and_networks_from_the_variable_and_the_flag(tmp_path: Path) -> None:
    env = {"AIRGATE_HOME": str(tmp_path),
           "AIRGATE_FORWARDED_ALLOW_IPS": " 10.0.0.1, 10.1.0.0/16,::1 "}
    assert from_environment(env).forwarded_allow_ips == ("10.0.0.1", "10.1.0.0/16", "::1")
    flagged = from_environment(env, forwarded_allow_ips=("127.0.0.1",))
    assert flagged.forwarded_allow_ips == ("127.0.0.1",)


@pytest.mark.parametrize("value", ["*", "proxy.example.com", "10.0.0.1/33"])
def test_anything_else_is_refused(tmp_path: Path, value: str) -> None:
    expected = re.escape(f"forwarded-allow-ips: '{value}' is not an IP address or network")
    with pytest.raises(ConfigError, match=expected):
        from_environment({"AIRGATE_HOME": str(tmp_path), "AIRGATE_FORWARDED_ALLOW_IPS": value})
