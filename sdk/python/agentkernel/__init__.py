"""agentkernel: write agentkernel agents in Python (built with componentize-py).

An agent is a subclass of `Agent` with two methods, exported with one line::

    from agentkernel import Agent, Manifest, Skill, Response, export, memory, log

    class Greeter(Agent):
        def describe(self):
            return (Manifest("greeter", "0.1.0", "Greets people and counts them.")
                    .skill(Skill("greet", "Say hello to someone", ["hello", "hi"]))
                    .capability("memory", "counts the people it greeted"))

        def handle(self, req):
            seen = memory.increment("greeted")
            log.info(f"greeting #{seen}")
            return Response(f"Hello, {req.text.strip()}!")

    WitWorld = export(Greeter)

`handle` returns a `Response` (or a plain string) or raises `AgentError`
(`InvalidRequest`, `CapabilityFailed`, `Failed`). A capability call that
fails raises `memory.Error` or `llm.Error`, both `CapabilityFailed`: let it
propagate and the host gets `capability-failed`, or catch it to degrade.
Any other exception becomes `failed` with its message.

Everything here is plain Python; the generated bindings (`wit_world`, made
by componentize-py from the agent's world) are used only when a capability
is called or the component's exports run, so an agent's logic imports and
unit-tests under any Python (see `agentkernel.testing`).

Import every module the agent needs at the top of its files: componentize-py
snapshots the interpreter after importing the app, and the component holds
only the modules imported by then (a standard-library module first imported
inside `handle` is `ModuleNotFoundError` at run time).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Optional

__all__ = [
    "Agent", "Manifest", "Skill", "Capability", "Request", "Response", "Turn",
    "AgentError", "InvalidRequest", "CapabilityFailed", "Failed", "export",
    "memory", "llm", "log",
]


@dataclass
class Skill:
    """One skill; the chat router matches requests against its name,
    description and keywords."""
    name: str
    description: str
    keywords: list[str] = field(default_factory=list)


@dataclass
class Capability:
    """A capability the agent imports and why (shown to operators)."""
    name: str
    reason: str


@dataclass
class Manifest:
    """What `describe` returns. `name` is lowercase `a-z0-9-`."""
    name: str
    version: str
    description: str
    skills: list[Skill] = field(default_factory=list)
    capabilities: list[Capability] = field(default_factory=list)

    def skill(self, skill: Skill) -> "Manifest":
        self.skills.append(skill)
        return self

    def capability(self, name: str, reason: str) -> "Manifest":
        self.capabilities.append(Capability(name, reason))
        return self


ROLES = ("system", "user", "assistant", "agent")


@dataclass
class Turn:
    """One line of a conversation; `role` is one of `ROLES`."""
    role: str
    content: str


@dataclass
class Request:
    session_id: str
    text: str
    history: list[Turn] = field(default_factory=list)
    context: Optional[str] = None

    def context_json(self) -> Any:
        """The JSON context parsed, or None when absent or invalid."""
        if self.context is None:
            return None
        try:
            return json.loads(self.context)
        except ValueError:
            return None


@dataclass
class Response:
    text: str
    data: Optional[str] = None

    def with_data(self, value: Any) -> "Response":
        """Attaches structured output, serialised as JSON."""
        self.data = json.dumps(value)
        return self


class AgentError(Exception):
    """Why the agent could not answer; `kind` is the WIT case."""
    kind = "failed"

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class InvalidRequest(AgentError):
    kind = "invalid-request"


class CapabilityFailed(AgentError):
    kind = "capability-failed"


class Failed(AgentError):
    kind = "failed"


class Agent:
    """Base class of an agent. Every call runs in a fresh instance: keep
    state that must outlive a call in `memory`, not in attributes."""

    def describe(self) -> Manifest:
        raise NotImplementedError

    def handle(self, req: Request) -> Response:
        raise NotImplementedError


# Imported after the types above: the capability modules use them.
from . import llm, log, memory  # noqa: E402


def _role_name(role: Any) -> str:
    # Generated bindings use an Enum (Role.USER); tests may pass strings.
    return role.name.lower() if hasattr(role, "name") else str(role)


def _from_wit_request(req: Any) -> Request:
    return Request(
        session_id=req.session_id,
        text=req.text,
        history=[Turn(_role_name(t.role), t.content) for t in req.history],
        context=req.context,
    )


def _preload_bindings() -> None:
    # Into the build's snapshot (see the module's doc); absent under a
    # plain Python, and an interface the world does not import is absent.
    import importlib

    for name in ("componentize_py_types", "wit_world.imports.types", "wit_world.imports.log",
                 "wit_world.imports.memory", "wit_world.imports.llm"):
        try:
            importlib.import_module(name)
        except ImportError:
            pass


def export(agent_class: type) -> type:
    """The class componentize-py calls (`WitWorld = export(MyAgent)`):
    converts between the generated WIT types and the ones here."""
    _preload_bindings()

    class WitWorld:
        def describe(self):
            from wit_world.imports import types as t

            m = agent_class().describe()
            return t.Manifest(
                m.name, m.version, m.description,
                [t.Skill(s.name, s.description, list(s.keywords)) for s in m.skills],
                [t.CapabilityRequest(c.name, c.reason) for c in m.capabilities],
            )

        def handle(self, req):
            from componentize_py_types import Err
            from wit_world.imports import types as t

            try:
                answer = agent_class().handle(_from_wit_request(req))
                if isinstance(answer, str):
                    answer = Response(answer)
                if not isinstance(answer, Response):
                    raise TypeError(f"handle returned {type(answer).__name__}, not a Response or str")
                text, data = str(answer.text), answer.data
                if data is not None and not isinstance(data, str):
                    raise TypeError("Response.data is a JSON document (str); use with_data(value)")
            except InvalidRequest as e:
                raise Err(t.AgentError_InvalidRequest(e.message))
            except CapabilityFailed as e:
                raise Err(t.AgentError_CapabilityFailed(e.message))
            except AgentError as e:
                raise Err(t.AgentError_Failed(e.message))
            except Exception as e:  # noqa: BLE001 - any bug answers `failed`, not a trap
                raise Err(t.AgentError_Failed(f"{type(e).__name__}: {e}"))
            return t.Response(text, data)

    WitWorld.__name__ = WitWorld.__qualname__ = "WitWorld"
    return WitWorld
