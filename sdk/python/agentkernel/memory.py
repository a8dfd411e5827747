"""Persistent key-value memory and per-session history (WIT `memory`),
inside the namespace policy assigns to the agent.

A value computed from what was read (a counter, the next free key) must be
written with `increment`, `compare_and_swap` or `batch`: a `get` then a
`set` can lose another call's write made in between. Every failure raises
`Error` (a `CapabilityFailed`); `error.code` is the WIT case
(`quota-exceeded`, `conflict`, ...). Every code except `outcome-unknown`
means the write was not applied.
"""
from __future__ import annotations

from typing import Optional, Union

from . import CapabilityFailed, Turn
from ._wit import call, code_of

Bytes = Union[bytes, str]


class Error(CapabilityFailed):
    def __init__(self, code: str, detail: str = ""):
        super().__init__(f"memory: {code}: {detail}" if detail else f"memory: {code}")
        self.code = code
        self.detail = detail


def _raw(name: str, *args):
    from componentize_py_types import Err

    try:
        return call("memory", name, *args)
    except Err as e:
        raise Error(code_of(e.value), str(getattr(e.value, "value", "") or "")) from None


class WitBackend:
    """The real backend: the generated bindings of the agent's world."""

    def get(self, key):
        return _raw("get", key)

    def set(self, key, value):
        _raw("set", key, value)

    def delete(self, key):
        return _raw("delete", key)

    def list_keys(self, prefix, limit):
        return _raw("list_keys", prefix, limit)

    def compare_and_swap(self, key, expected, new):
        return _raw("compare_and_swap", key, expected, new)

    def increment(self, key, delta):
        return _raw("increment", key, delta)

    def batch(self, ops):
        from wit_world.imports import memory as raw

        make = {"set": raw.BatchOp_Set, "delete": raw.BatchOp_Delete, "expect": raw.BatchOp_Expect}
        _raw("batch", [make[kind](key if kind == "delete" else (key, rest[0])) for kind, key, *rest in ops])

    def append_history(self, session_id, turn):
        from wit_world.imports import types as t

        _raw("append_history", session_id, t.Turn(t.Role[turn.role.upper()], turn.content))

    def history(self, session_id, limit):
        return [Turn(t.role.name.lower(), t.content) for t in _raw("history", session_id, limit)]


# Where the calls go; `agentkernel.testing` swaps in an in-process fake.
backend = WitBackend()


def _bytes(value: Bytes) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value)


def _opt_bytes(value: Optional[Bytes]) -> Optional[bytes]:
    return None if value is None else _bytes(value)


def get(key: str) -> Optional[bytes]:
    """The value under `key`, or None."""
    return backend.get(key)


def get_str(key: str) -> Optional[str]:
    """The value under `key` as UTF-8 text (invalid bytes replaced), or None."""
    v = backend.get(key)
    return None if v is None else bytes(v).decode("utf-8", "replace")


def set(key: str, value: Bytes) -> None:  # noqa: A001 - the WIT name
    """Stores `value` (bytes, or str as UTF-8) under `key`."""
    backend.set(key, _bytes(value))


def delete(key: str) -> bool:
    """Removes `key`; True if it existed."""
    return backend.delete(key)


def list_keys(prefix: str, limit: int = 1000) -> list[str]:
    """Keys starting with `prefix`, in lexical order, at most `limit`."""
    return list(backend.list_keys(prefix, limit))


def compare_and_swap(key: str, expected: Optional[Bytes], new: Optional[Bytes]) -> bool:
    """Atomically: if `key` holds `expected` (None: absent), sets it to `new`
    (None: deletes it) and returns True; otherwise changes nothing and
    returns False. Loop on False to update a value safely."""
    return backend.compare_and_swap(key, _opt_bytes(expected), _opt_bytes(new))


def increment(key: str, delta: int = 1) -> int:
    """Atomically adds `delta` to the counter under `key` (absent: 0) and
    returns the new value; concurrent callers each get a distinct value.
    Stored as decimal text."""
    return backend.increment(key, delta)


def batch(ops: list[tuple]) -> None:
    """Applies `ops` in order, all or nothing (at most 64 steps, 1 MiB):
    `("set", key, value)`, `("delete", key)`, `("expect", key, value_or_None)`.
    An `expect` that does not hold raises `Error` with code `conflict`."""
    steps = []
    for kind, key, *rest in ops:
        if kind not in ("set", "delete", "expect"):
            raise ValueError(f"unknown batch step {kind!r}")
        steps.append((kind, key) if kind == "delete" else (kind, key, _opt_bytes(rest[0])))
    backend.batch(steps)


def append_history(session_id: str, turn: Turn) -> None:
    """Appends a turn to the session's history (a window: its oldest turns
    are dropped when full; `quota-exceeded` when the namespace is full)."""
    backend.append_history(session_id, turn)


def history(session_id: str, limit: int = 50) -> list[Turn]:
    """The last `limit` turns of the session, oldest first."""
    return list(backend.history(session_id, limit))
