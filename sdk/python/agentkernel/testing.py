"""In-process fakes of the capabilities, to unit-test an agent under a plain
Python (no host, no component)::

    from agentkernel.testing import FakeHost

    with FakeHost(llm=lambda messages, options: "a summary") as host:
        answer = MyAgent().handle(Request("s1", "hello"))
        assert host.memory.data == {...}
        assert host.logs == [("info", "...")]

`llm` is a function `(messages, options) -> str | llm.Reply`, or None for
a host with no model (every chat raises `llm.Error("not-configured")`).
"""
from __future__ import annotations

from typing import Callable, Optional, Union

from . import Turn, llm, log, memory


class FakeMemory:
    """A dict behind the `memory` helpers, with the host's semantics for
    counters, compare-and-swap and all-or-nothing batches."""

    def __init__(self):
        self.data: dict[str, bytes] = {}
        self.histories: dict[str, list[Turn]] = {}

    def get(self, key):
        return self.data.get(key)

    def set(self, key, value):
        self.data[key] = bytes(value)

    def delete(self, key):
        return self.data.pop(key, None) is not None

    def list_keys(self, prefix, limit):
        return sorted(k for k in self.data if k.startswith(prefix))[:limit]

    def compare_and_swap(self, key, expected, new):
        if self.data.get(key) != expected:
            return False
        if new is None:
            self.data.pop(key, None)
        else:
            self.data[key] = bytes(new)
        return True

    def increment(self, key, delta):
        raw = self.data.get(key, b"0")
        try:
            value = int(raw.decode()) + delta
        except ValueError:
            raise memory.Error("invalid-value", f"{key} is not a decimal integer") from None
        self.data[key] = str(value).encode()
        return value

    def batch(self, ops):
        staged = dict(self.data)
        for kind, key, *rest in ops:
            if kind == "set":
                staged[key] = bytes(rest[0])
            elif kind == "delete":
                staged.pop(key, None)
            elif staged.get(key) != rest[0]:
                raise memory.Error("conflict", f"expect on {key} did not hold")
        self.data = staged

    def append_history(self, session_id, turn):
        self.histories.setdefault(session_id, []).append(Turn(turn.role, turn.content))

    def history(self, session_id, limit):
        return self.histories.get(session_id, [])[-limit:] if limit else []


LlmFn = Callable[[list, "llm.Options"], Union[str, "llm.Reply"]]


class FakeLlm:
    """Answers with `respond(messages, options)`; None: not configured.
    Every call is kept in `calls` as (messages, options)."""

    def __init__(self, respond: Optional[LlmFn]):
        self.respond = respond
        self.calls: list[tuple] = []

    def chat(self, messages, options):
        self.calls.append((messages, options))
        if self.respond is None:
            raise llm.Error("not-configured")
        out = self.respond(messages, options)
        return llm.Reply(out, model="fake") if isinstance(out, str) else out


class FakeLog:
    def __init__(self, lines):
        self.lines = lines

    def write(self, level, message):
        self.lines.append((level, message))


class FakeHost:
    """Installs the fakes while in the `with` block (or between `install()`
    and `uninstall()`); `memory`, `llm` and `logs` are there to inspect."""

    def __init__(self, llm: Optional[LlmFn] = None):
        self.memory = FakeMemory()
        self.llm = FakeLlm(llm)
        self.logs: list[tuple[str, str]] = []
        self._saved = None

    def install(self) -> "FakeHost":
        self._saved = (memory.backend, llm.backend, log.backend)
        memory.backend, llm.backend, log.backend = self.memory, self.llm, FakeLog(self.logs)
        return self

    def uninstall(self) -> None:
        memory.backend, llm.backend, log.backend = self._saved

    def __enter__(self) -> "FakeHost":
        return self.install()

    def __exit__(self, *exc) -> None:
        self.uninstall()
