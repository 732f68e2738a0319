"""The conformance tests of the KeyValueStore protocol, run against every backend."""

from __future__ import annotations

import contextlib
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tally.store import (
    MAX_KEY_SIZE,
    BatchClosedError,
    InvalidKeyError,
    KeyValueStore,
    MemoryStore,
    NestedBatchError,
    StoreClosedError,
)

from .conftest import Backend


class AbortBatchError(Exception):
    """Raised inside an atomic() block to make it discard its writes."""


def write_then_fail(
    kv: KeyValueStore, items: dict[bytes, bytes], deletes: tuple[bytes, ...] = ()
) -> None:
    with kv.atomic() as batch:
        for key, value in items.items():
            batch.put(key, value)
        for key in deletes:
            batch.delete(key)
        raise AbortBatchError


def put(kv: KeyValueStore, items: dict[bytes, bytes]) -> None:
    with kv.atomic() as batch:
        for key, value in items.items():
            batch.put(key, value)


# (is_put, key, value): short keys, so that batches often touch the same ones.
_OPS = st.lists(
    st.tuples(st.booleans(), st.binary(min_size=1, max_size=3), st.binary(max_size=8)),
    max_size=20,
)


class TestKeyValueStoreConformance:
    def test_get_returns_none_for_absent_key(self, kv):
        assert kv.get(b"missing") is None

    def test_put_then_get_returns_value(self, kv):
        put(kv, {b"k": b"v", b"empty": b""})
        assert kv.get(b"k") == b"v"
        assert kv.get(b"empty") == b""

    def test_put_replaces_value(self, kv):
        put(kv, {b"k": b"one"})
        put(kv, {b"k": b"two"})
        assert kv.get(b"k") == b"two"

    def test_delete_removes_key_and_absent_delete_is_noop(self, kv):
        put(kv, {b"k": b"v"})
        with kv.atomic() as batch:
            batch.delete(b"k")
            batch.delete(b"never-there")
        assert kv.get(b"k") is None
        assert list(kv.iter_prefix(b"")) == []

    def test_keys_outside_size_limits_are_refused_alike(self, kv):
        with kv.atomic() as batch:
            for key in (b"", bytes(MAX_KEY_SIZE + 1)):
                with pytest.raises(InvalidKeyError):
                    batch.put(key, b"v")
                with pytest.raises(InvalidKeyError):
                    batch.delete(key)
                with pytest.raises(InvalidKeyError):
                    batch.get(key)
            batch.put(bytes(MAX_KEY_SIZE), b"longest")
        with pytest.raises(InvalidKeyError):
            kv.get(b"")
        assert kv.get(bytes(MAX_KEY_SIZE)) == b"longest"

    def test_iter_prefix_yields_matching_keys_in_byte_order(self, kv):
        put(
            kv,
            {
                b"a\x02": b"2",
                b"a\x01\xff": b"1ff",
                b"a\x01": b"1",
                b"a\xff": b"ff",
                b"b": b"other",
                b"\x00a": b"before",
                b"a": b"bare",
            },
        )
        assert list(kv.iter_prefix(b"a")) == [
            (b"a", b"bare"),
            (b"a\x01", b"1"),
            (b"a\x01\xff", b"1ff"),
            (b"a\x02", b"2"),
            (b"a\xff", b"ff"),
        ]
        assert list(kv.iter_prefix(b"a\x01")) == [(b"a\x01", b"1"), (b"a\x01\xff", b"1ff")]
        assert list(kv.iter_prefix(b"c")) == []
        assert [key for key, _ in kv.iter_prefix(b"")] == sorted(
            [b"a\x02", b"a\x01\xff", b"a\x01", b"a\xff", b"b", b"\x00a", b"a"]
        )

    def test_iter_prefix_orders_big_endian_integers_numerically(self, kv):
        heights = [0, 1, 255, 256, 65_536, 2**40]
        put(kv, {b"h" + h.to_bytes(8, "big"): b"" for h in reversed(heights)})
        found = [int.from_bytes(key[1:], "big") for key, _ in kv.iter_prefix(b"h")]
        assert found == heights

    def test_atomic_commits_all_writes_on_normal_exit(self, kv):
        with kv.atomic() as batch:
            batch.put(b"x", b"1")
            batch.put(b"y", b"2")
            assert kv.get(b"x") is None  # not visible outside before the commit
        assert kv.get(b"x") == b"1"
        assert kv.get(b"y") == b"2"

    def test_atomic_discards_every_write_when_block_raises(self, kv):
        put(kv, {b"keep": b"old", b"gone": b"still here"})
        with pytest.raises(AbortBatchError):
            write_then_fail(kv, {b"keep": b"new", b"fresh": b"v"}, deletes=(b"gone",))
        assert kv.get(b"keep") == b"old"
        assert kv.get(b"fresh") is None
        assert kv.get(b"gone") == b"still here"

    def test_store_is_usable_after_a_discarded_batch(self, kv):
        with pytest.raises(AbortBatchError):
            write_then_fail(kv, {b"k": b"discarded"})
        put(kv, {b"k": b"kept"})
        assert kv.get(b"k") == b"kept"

    def test_reads_inside_batch_see_its_writes(self, kv):
        put(kv, {b"p1": b"old", b"p3": b"doomed", b"q": b"q"})
        with kv.atomic() as batch:
            batch.put(b"p1", b"new")
            batch.put(b"p2", b"added")
            batch.delete(b"p3")
            assert batch.get(b"p1") == b"new"
            assert batch.get(b"p2") == b"added"
            assert batch.get(b"p3") is None
            assert batch.get(b"q") == b"q"
            assert list(batch.iter_prefix(b"p")) == [(b"p1", b"new"), (b"p2", b"added")]

    def test_batch_may_delete_what_its_iterator_yields(self, kv):
        put(kv, {b"e" + i.to_bytes(4, "big"): b"" for i in range(1000)})
        with kv.atomic() as batch:
            for key, _ in batch.iter_prefix(b"e"):
                if int.from_bytes(key[1:], "big") >= 700:
                    break
                batch.delete(key)
        remaining = [int.from_bytes(key[1:], "big") for key, _ in kv.iter_prefix(b"e")]
        assert remaining == list(range(700, 1000))

    def test_batch_iterator_yields_every_key_once_while_batch_writes(self, kv):
        put(kv, {b"w" + i.to_bytes(4, "big"): b"0" for i in range(600)})
        seen = []
        with kv.atomic() as batch:
            for key, value in batch.iter_prefix(b"w"):
                seen.append(key)
                assert value == b"0"
                batch.put(key, b"1")  # rewriting the yielded key must not disturb the scan
        assert seen == [b"w" + i.to_bytes(4, "big") for i in range(600)]
        assert all(value == b"1" for _, value in kv.iter_prefix(b"w"))

    def test_open_iterator_keeps_seeing_the_state_it_started_on(self, kv):
        put(kv, {b"s1": b"a", b"s2": b"b"})
        iterator = kv.iter_prefix(b"s")
        assert next(iterator) == (b"s1", b"a")
        with kv.atomic() as batch:
            batch.put(b"s2", b"changed")
            batch.put(b"s3", b"new")
        assert list(iterator) == [(b"s2", b"b")]

    def test_snapshot_is_not_changed_by_later_commits(self, kv):
        put(kv, {b"k": b"before"})
        with kv.snapshot() as view:
            put(kv, {b"k": b"after", b"n": b"new"})
            assert view.get(b"k") == b"before"
            assert view.get(b"n") is None
            assert list(view.iter_prefix(b"")) == [(b"k", b"before")]
        assert kv.get(b"k") == b"after"

    def test_batch_is_refused_after_its_block_ends(self, kv):
        with kv.atomic() as batch:
            batch.put(b"k", b"v")
        with pytest.raises(BatchClosedError):
            batch.put(b"k", b"late")
        with pytest.raises(BatchClosedError):
            batch.get(b"k")
        assert kv.get(b"k") == b"v"

    def test_nested_atomic_on_one_thread_is_refused(self, kv):
        with kv.atomic() as batch:
            batch.put(b"outer", b"v")
            with pytest.raises(NestedBatchError), kv.atomic():
                pass
        assert kv.get(b"outer") == b"v"

    def test_writers_on_two_threads_take_turns(self, kv):
        put(kv, {b"counter": (0).to_bytes(8, "big")})

        def increment(times: int) -> None:
            for _ in range(times):
                with kv.atomic() as batch:
                    value = batch.get(b"counter")
                    assert value is not None
                    batch.put(b"counter", (int.from_bytes(value, "big") + 1).to_bytes(8, "big"))

        threads = [threading.Thread(target=increment, args=(50,)) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert kv.get(b"counter") == (200).to_bytes(8, "big")

    def test_closed_store_refuses_use(self, kv):
        kv.close()
        with pytest.raises(StoreClosedError):
            kv.get(b"k")
        with pytest.raises(StoreClosedError):
            kv.iter_prefix(b"")
        with pytest.raises(StoreClosedError), kv.atomic():
            pass

    def test_reopened_store_keeps_committed_data_and_not_discarded(self, backend: Backend) -> None:
        kv = backend.open()
        put(kv, {b"a": b"1", b"b": b"2"})
        with pytest.raises(AbortBatchError):
            write_then_fail(kv, {b"c": b"never"})
        kv = backend.reopen(kv)
        assert list(kv.iter_prefix(b"")) == [(b"a", b"1"), (b"b", b"2")]

    @settings(
        max_examples=30,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(batches=st.lists(st.tuples(_OPS, st.booleans()), max_size=6))
    def test_any_sequence_of_batches_matches_a_dict_model(
        self, backend: Backend, batches: list[tuple[list[tuple[bool, bytes, bytes]], bool]]
    ) -> None:
        kv = backend.fresh()
        model: dict[bytes, bytes] = {}
        for ops, fails in batches:
            draft = dict(model)
            with contextlib.suppress(AbortBatchError), kv.atomic() as batch:
                for is_put, key, value in ops:
                    if is_put:
                        batch.put(key, value)
                        draft[key] = value
                    else:
                        batch.delete(key)
                        draft.pop(key, None)
                    assert batch.get(key) == draft.get(key)
                assert list(batch.iter_prefix(b"")) == sorted(draft.items())
                if fails:
                    raise AbortBatchError
                model = draft
            assert list(kv.iter_prefix(b"")) == sorted(model.items())
        kv.close()


def test_memory_store_published_state_is_not_mutated_by_a_batch():
    kv = MemoryStore()
    put(kv, {b"k": b"v"})
    with kv.snapshot() as view, kv.atomic() as batch:
        batch.put(b"k", b"changed")
        batch.delete(b"k")
        assert view.get(b"k") == b"v"
