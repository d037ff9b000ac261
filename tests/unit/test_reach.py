"""Addresses another gateway recorded: a loopback one is usable only on its own machine."""

from __future__ import annotations

from airgate.environments.reach import MACHINE, reachable, this_machine


def test_loopback_addresses_are_usable_only_on_the_runner_s_machine() -> None:
    here, elsewhere = this_machine(), "another-machine"
    for url in ("http://127.0.0.1:8793", "http://127.0.0.2:8793", "http://localhost:1",
                "http://[::1]:8793"):
        assert reachable({"ApiUrl": url, MACHINE: here}, "ApiUrl") == url
        assert reachable({"ApiUrl": url, MACHINE: elsewhere}, "ApiUrl") is None
        assert reachable({"ApiUrl": url}, "ApiUrl") is None  # machine not recorded
    advertised = "http://10.0.0.5:8793"
    assert reachable({"ApiUrl": advertised, MACHINE: elsewhere}, "ApiUrl") == advertised
    assert reachable({"ApiUrl": "http://runner.internal:1"}, "ApiUrl") == \
        "http://runner.internal:1"
    assert reachable({}, "ApiUrl") is None


def test_this_machine_is_stable() -> None:
    assert this_machine() and this_machine() == this_machine()
