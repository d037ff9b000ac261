"""When an environment's runner has lost it (takeover.py), and whose names it keeps."""

from __future__ import annotations

from airgate.environments.takeover import abandoned, lease_until, origin_of

ME, OTHER = "b-installation", "a-installation"


def runtime(**facts: object) -> dict[str, object]:
    return {"Runner": OTHER, "MetadataOnServer": True, "LeaseUntil": 100.0, **facts}


def test_only_another_runner_s_lapsed_lease_on_server_metadata_is_abandoned() -> None:
    assert abandoned(runtime(), ME, now=100.5)
    assert not abandoned(runtime(), ME, now=99.0)  # the lease still holds
    assert not abandoned(runtime(Runner=ME), ME, now=200)  # our own
    assert not abandoned(runtime(Runner=None), ME, now=200)  # no runner recorded: unknown
    assert not abandoned(runtime(MetadataOnServer=False), ME, now=200)  # SQLite on its host
    assert not abandoned(runtime(LeaseUntil=None), ME, now=200)  # from before leases
    assert lease_until(now=10.0) == 40.0


def test_names_stay_those_of_the_installation_that_made_the_environment() -> None:
    assert origin_of({"Origin": OTHER, "Runner": ME}, ME) == OTHER
    assert origin_of({"Runner": OTHER}, ME) == OTHER  # recorded before origins were
    assert origin_of({}, ME) == ME
