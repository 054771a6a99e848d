"""One contract, two stores: the same tests run against SQLite and memory."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from vtap.domain.policy import PolicySpec
from vtap.store import (
    BatchConflict,
    DuplicateName,
    DuplicatePolicy,
    MemoryPolicyRepository,
    PolicyNotFound,
    PolicyRepository,
    SqlitePolicyRepository,
    StoreError,
)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)


def spec(name: str = "tap1", dst: int = 2, **extra: object) -> PolicySpec:
    return PolicySpec.model_validate(
        {
            "name": name,
            "src_ip": "10.0.0.1",
            "dst_ip": f"10.0.0.{dst}",
            "monitor_mac": "00:00:00:00:00:03",
            **extra,
        }
    )


@pytest.fixture(params=["memory", "sqlite"])
def repo(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PolicyRepository]:
    store: PolicyRepository
    if request.param == "memory":
        store = MemoryPolicyRepository()
    else:
        store = SqlitePolicyRepository(tmp_path / "vtap.db")
    yield store
    store.close()


def test_add_get_list(repo: PolicyRepository) -> None:
    a = repo.add(spec("a", 2), T0)
    b = repo.add(spec("b", 4, ip_proto=6, dst_port=80), T0)
    assert (a.id, b.id) == (1, 2)
    assert a.created_at == a.updated_at == T0
    assert repo.get(b.id) == b
    assert repo.get(b.id).dst_port == 80
    assert [p.id for p in repo.list()] == [1, 2]


def test_unknown_id(repo: PolicyRepository) -> None:
    with pytest.raises(PolicyNotFound) as info:
        repo.get(9)
    assert info.value.policy_id == 9
    with pytest.raises(PolicyNotFound):
        repo.update(9, spec(), T0)
    with pytest.raises(PolicyNotFound):
        repo.delete(9)


@pytest.mark.parametrize("policy_id", [0, -1, 2**63, 2**70, -(2**64)])
def test_id_outside_any_policy_is_not_found(repo: PolicyRepository, policy_id: int) -> None:
    # The API passes any integer from the URL: SQLite must answer "not found" (404), not raise
    # OverflowError (500) for ids beyond 64 bits.
    repo.add(spec(), T0)
    for call in (
        lambda: repo.get(policy_id),
        lambda: repo.update(policy_id, spec("other", 4), T0),
        lambda: repo.delete(policy_id),
    ):
        with pytest.raises(PolicyNotFound):
            call()
    assert len(repo.list()) == 1


def test_duplicates(repo: PolicyRepository) -> None:
    a = repo.add(spec("a", 2), T0)
    with pytest.raises(DuplicatePolicy) as dup:
        repo.add(
            spec("other", 2, delivery="rewrite", dst_mac="00:00:00:00:00:02").model_copy(
                update={"dst_mac": None}
            ),
            T0,
        )
    assert dup.value.existing_id == a.id
    with pytest.raises(DuplicateName) as name:
        repo.add(spec("a", 5), T0)
    assert name.value.existing_id == a.id
    assert isinstance(name.value, StoreError)
    assert len(repo.list()) == 1


def test_add_many_stores_all_in_order(repo: PolicyRepository) -> None:
    added = repo.add_many([spec("a", dst=2), spec("b", dst=4), spec("c", dst=5)], T0)
    assert [p.name for p in added] == ["a", "b", "c"]
    assert [p.id for p in added] == sorted(p.id for p in added)
    assert repo.list() == added


@pytest.mark.parametrize(
    ("batch", "index", "words"),
    [
        ([spec("a", dst=2), spec("b", dst=4), spec("c", dst=2)], 2, "policies[0]"),
        ([spec("a", dst=2), spec("a", dst=4)], 1, "name 'a'"),
        ([spec("a", dst=2), spec("stored", dst=9)], 1, "already named"),
        ([spec("a", dst=2), spec("b", dst=8)], 1, "same match and monitor"),
    ],
    ids=["same-match-in-batch", "same-name-in-batch", "name-of-stored", "match-of-stored"],
)
def test_add_many_is_all_or_nothing_and_names_the_item(
    repo: PolicyRepository, batch: list[PolicySpec], index: int, words: str
) -> None:
    repo.add(spec("stored", dst=8), T0)
    with pytest.raises(BatchConflict) as err:
        repo.add_many(batch, T1)
    assert err.value.index == index
    assert str(err.value).startswith(f"policies[{index}]: ")
    assert words in str(err.value)
    assert [p.name for p in repo.list()] == ["stored"]
    assert repo.add_many([spec("a", dst=2)], T1)[0].id == 2  # the failed batch used no id


def test_delete_many_is_all_or_nothing(repo: PolicyRepository) -> None:
    a, b, c = repo.add_many([spec("a", dst=2), spec("b", dst=4), spec("c", dst=5)], T0)
    with pytest.raises(PolicyNotFound) as err:
        repo.delete_many([a.id, 99, c.id])
    assert err.value.policy_id == 99
    assert repo.list() == [a, b, c]
    repo.delete_many([c.id, a.id])
    assert repo.list() == [b]


def test_update(repo: PolicyRepository) -> None:
    a = repo.add(spec("a", 2), T0)
    b = repo.add(spec("b", 4), T0)
    same = repo.update(a.id, spec("a", 2, enabled=False), T1)  # itself is no duplicate
    assert same.enabled is False
    assert same.created_at == T0
    assert same.updated_at == T1
    assert repo.get(a.id) == same
    with pytest.raises(DuplicatePolicy):
        repo.update(a.id, spec("a", 4), T1)
    with pytest.raises(DuplicateName):
        repo.update(a.id, spec("b", 9), T1)
    assert repo.get(a.id) == same  # failed updates change nothing
    assert repo.get(b.id) == b


def test_delete_and_ids_are_not_reused(repo: PolicyRepository) -> None:
    a = repo.add(spec("a", 2), T0)
    b = repo.add(spec("b", 4), T0)
    repo.delete(b.id)
    with pytest.raises(PolicyNotFound):
        repo.get(b.id)
    c = repo.add(spec("b", 4), T0)  # the same policy again is fine once the old one is gone
    assert c.id == 3
    assert [p.id for p in repo.list()] == [a.id, c.id]


def test_tags(repo: PolicyRepository) -> None:
    assert repo.get_tags() == {}
    repo.set_tags({"monitor:00:00:00:00:00:03": 3900, "policy:4": 3901})
    assert repo.get_tags() == {"monitor:00:00:00:00:00:03": 3900, "policy:4": 3901}
    repo.set_tags({"policy:4": 3901})
    assert repo.get_tags() == {"policy:4": 3901}


def test_sqlite_reopen_finds_everything(tmp_path: Path) -> None:
    path = tmp_path / "state" / "vtap.db"
    repo = SqlitePolicyRepository(path)
    a = repo.add(spec("a", 2, vlan_id=100), T0)
    b = repo.add(spec("b", 4), T0)
    repo.update(b.id, spec("b", 5), T1)
    repo.delete(a.id)
    repo.set_tags({"monitor:00:00:00:00:00:03": 3950})
    before = repo.list()
    repo.close()

    again = SqlitePolicyRepository(path)
    assert again.list() == before
    assert again.get(b.id).dst_ip == "10.0.0.5"
    assert again.get(b.id).updated_at == T1
    assert again.get_tags() == {"monitor:00:00:00:00:00:03": 3950}
    assert again.add(spec("c", 6), T1).id == 3
    again.close()


def test_sqlite_failed_write_corrupts_nothing(tmp_path: Path) -> None:
    path = tmp_path / "vtap.db"
    repo = SqlitePolicyRepository(path)
    repo.set_tags({"a": 3900})
    with pytest.raises(OverflowError):
        repo.set_tags({"a": 1, "b": 2**70})  # fails after the delete and the first insert
    assert repo.get_tags() == {"a": 3900}
    repo.add(spec("a", 2), T0)
    assert len(repo.list()) == 1
    repo.close()


def test_sqlite_refuses_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "vtap.db"
    SqlitePolicyRepository(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE schema_version SET version = 99")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="schema version 99"):
        SqlitePolicyRepository(path)


def test_sqlite_uses_wal(tmp_path: Path) -> None:
    path = tmp_path / "vtap.db"
    SqlitePolicyRepository(path).close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


def test_replace_swaps_two_matches_and_creates_changes_removes_at_once(
    repo: PolicyRepository, tmp_path: Path
) -> None:
    """The file that once deleted one policy, hit 409 and never created the other: a and b
    trade their matches, c goes, d comes; the end state is exactly the desired set."""
    from vtap.store.base import plan_replace

    a, b, c = repo.add(spec("a", 2), T0), repo.add(spec("b", 4), T0), repo.add(spec("c", 5), T0)
    desired = [spec("a", 4), spec("b", 2), spec("d", 6)]
    plan = plan_replace(repo.list(), desired)
    assert [p.name for p in plan.remove] == ["c"] and [s.name for s in plan.create] == ["d"]
    created, changed = repo.replace(plan, T1)
    assert [p.name for p in created] == ["d"] and created[0].id == 4  # ids never reused
    assert {p.name: p.dst_ip for p in changed} == {"a": "10.0.0.4", "b": "10.0.0.2"}
    assert {p.name: (p.id, p.dst_ip) for p in repo.list()} == {
        "a": (a.id, "10.0.0.4"), "b": (b.id, "10.0.0.2"), "d": (4, "10.0.0.6"),
    }  # fmt: skip
    assert repo.get(a.id).created_at == T0 and repo.get(a.id).updated_at == T1
    with pytest.raises(PolicyNotFound):
        repo.get(c.id)
    with pytest.raises(DuplicatePolicy):  # the keys follow the swap
        repo.add(spec("e", 2), T1)
    if isinstance(repo, SqlitePolicyRepository):  # and the file says the same after a reopen
        repo.close()
        again = SqlitePolicyRepository(tmp_path / "vtap.db")
        assert {p.name: p.dst_ip for p in again.list()} == {
            "a": "10.0.0.4", "b": "10.0.0.2", "d": "10.0.0.6",
        }  # fmt: skip
        again.close()


def test_replace_plan_refuses_a_desired_set_with_twins(repo: PolicyRepository) -> None:
    from vtap.store.base import plan_replace

    repo.add(spec("a", 2), T0)
    with pytest.raises(BatchConflict, match=r"policies\[1\]"):
        plan_replace(repo.list(), [spec("x", 3), spec("y", 3)])
    assert [p.name for p in repo.list()] == ["a"]
