"""Chat completions through the host (WIT `llm`; needs `llm` granted).

Agents ask for a model *profile* (`fast`, `smart`, `code`, ...) that the
operator maps to a real model::

    from agentkernel import llm

    try:
        reply = llm.chat("fast", [llm.system("Summarise in one sentence."), llm.user(text)],
                         max_tokens=100)
        summary = reply.content
    except llm.Error as e:
        if e.code != "not-configured":
            raise
        summary = text.split(".")[0]   # no model here: degrade gracefully

Failures raise `Error` (a `CapabilityFailed`) whose `code` is the WIT case:
`not-configured`, `budget-exceeded`, `model-not-allowed`, `rate-limited`,
`timeout`, `bad-response`, `upstream`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional, Union

from . import CapabilityFailed
from ._wit import call, code_of


class Error(CapabilityFailed):
    def __init__(self, code: str, detail: str = ""):
        super().__init__(f"llm: {code}: {detail}" if detail else f"llm: {code}")
        self.code = code
        self.detail = detail


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: str  # a JSON document, as the model wrote it: validate it

    def args(self) -> Any:
        return json.loads(self.arguments)


@dataclass
class Tool:
    """A function the model may ask for; `parameters` is a JSON Schema (dict)."""
    name: str
    description: str
    parameters: dict = field(default_factory=lambda: {"type": "object", "properties": {}})


@dataclass
class Message:
    role: str  # system, user, assistant or tool
    content: str
    tool_call_id: Optional[str] = None
    tool_calls: list[ToolCall] = field(default_factory=list)


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass
class Reply:
    content: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str = "stop"
    model: str = ""
    usage: Usage = field(default_factory=Usage)


def system(content: str) -> Message:
    return Message("system", content)


def user(content: str) -> Message:
    return Message("user", content)


def assistant(content: str) -> Message:
    return Message("assistant", content)


def tool_result(call_id: str, content: str) -> Message:
    """The answer to tool call `call_id` (send the assistant's request first)."""
    return Message("tool", content, tool_call_id=call_id)


@dataclass
class Options:
    profile: str
    temperature: Optional[float] = None
    max_tokens: Optional[int] = None
    json: bool = False
    tools: list[Tool] = field(default_factory=list)


class WitBackend:
    """The real backend: the generated bindings of the agent's world."""

    def chat(self, messages: list[Message], options: Options) -> Reply:
        from componentize_py_types import Err
        from wit_world.imports import llm as raw

        def wit_call(c):
            return raw.ToolCall(c.id, c.name, c.arguments)

        wit_messages = [
            raw.ChatMessage(m.role, m.content, m.tool_call_id, [wit_call(c) for c in m.tool_calls])
            for m in messages
        ]
        wit_options = raw.ChatOptions(
            options.profile,
            options.temperature,
            options.max_tokens,
            raw.ResponseFormat.JSON_OBJECT if options.json else raw.ResponseFormat.TEXT,
            [raw.ToolDefinition(t.name, t.description, json.dumps(t.parameters)) for t in options.tools],
        )
        try:
            r = call("llm", "chat", wit_messages, wit_options)
        except Err as e:
            raise Error(code_of(e.value), str(getattr(e.value, "value", "") or "")) from None
        return Reply(
            r.content,
            [ToolCall(c.id, c.name, c.arguments) for c in r.tool_calls],
            r.finish_reason,
            r.model,
            Usage(r.usage.prompt_tokens, r.usage.completion_tokens),
        )


# Where the calls go; `agentkernel.testing` swaps in a scripted fake.
backend = WitBackend()

MessageLike = Union[Message, tuple, str]


def _message(m: MessageLike) -> Message:
    if isinstance(m, Message):
        return m
    if isinstance(m, str):
        return user(m)
    role, content = m
    return Message(role, content)


def chat(
    profile: str,
    messages: Iterable[MessageLike],
    *,
    temperature: Optional[float] = None,
    max_tokens: Optional[int] = None,
    json: bool = False,  # noqa: A002 - ask for a JSON object
    tools: Iterable[Tool] = (),
) -> Reply:
    """One chat completion with the model behind `profile`. `messages` are
    `Message`s, `(role, content)` pairs or plain strings (user turns)."""
    options = Options(profile, temperature, max_tokens, json, list(tools))
    return backend.chat([_message(m) for m in messages], options)
