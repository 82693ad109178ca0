"""`IdentityMemo`: a value per object, never another object's."""

from __future__ import annotations

from turtle_core.memo import IdentityMemo


class Owner:
    pass


def test_a_value_is_computed_once_per_owner_and_key() -> None:
    memo, calls = IdentityMemo(), []
    owner = Owner()

    def compute() -> int:
        calls.append(1)
        return len(calls)

    assert memo.get((owner,), "k", compute) == 1
    assert memo.get((owner,), "k", compute) == 1
    assert memo.get((owner,), "other", compute) == 2
    assert memo.get((Owner(),), "k", compute) == 3  # an equal-looking but other owner
    assert len(calls) == 3


def test_an_owner_at_a_reused_address_gets_its_own_value() -> None:
    memo = IdentityMemo()
    first = Owner()
    memo.get((first,), "k", lambda: "first")
    # The memo keeps `first` alive with its value, so no other object can take its address meanwhile;
    # a new owner (whatever its address) is compared by identity, not by id.
    second = Owner()
    assert memo.get((second,), "k", lambda: "second") == "second"
    assert memo.get((first,), "k", lambda: "again") == "first"


def test_the_oldest_values_are_dropped_beyond_its_size() -> None:
    memo = IdentityMemo(size=2)
    owners = [Owner() for _ in range(3)]
    for i, owner in enumerate(owners):
        memo.get((owner,), "k", lambda i=i: i)
    assert memo.get((owners[0],), "k", lambda: "recomputed") == "recomputed"
    assert memo.get((owners[2],), "k", lambda: "recomputed") == 2
