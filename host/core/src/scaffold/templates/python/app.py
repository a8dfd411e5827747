"""`{name}`: an agentkernel agent in Python.

It answers every message with what it heard and how many messages this
session has sent it (a counter in `memory`).

Test:   python3 -m unittest          (test_app.py, with fakes of the host)
Deploy: agentkernel build .          (componentize-py, then into the agents directory)

The componentize-py entry point is `WitWorld` at the bottom; everything
above it is plain Python. Import every module the agent needs here, at the
top: the component holds only the modules imported when it was built.
"""
from __future__ import annotations

from agentkernel import Agent, InvalidRequest, Manifest, Request, Response, Skill, export, log, memory

AGENT = "{name}"
VERSION = "0.1.0"


def counter_key(session: str) -> str:
    """Where the message count of `session` is kept in `memory`."""
    return f"session/{session}/messages"


def answer(text: str, count: int) -> str:
    """The reply to the `count`-th message of a session. Pure, so
    test_app.py covers it without a host."""
    return f"{AGENT} heard: {text.strip()} (message {count} of this session)"


class {Type}(Agent):
    def describe(self) -> Manifest:
        return (
            Manifest(AGENT, VERSION, "Describe what {name} does.")
            .skill(Skill("{name}", "What requests this agent is good at", ["{name}"]))
            .capability("memory", "counts the messages of each session")
            .capability("log", "notes each message it answers")
        )

    def handle(self, req: Request) -> Response:
        if not req.text.strip():
            raise InvalidRequest("empty request")
        # Atomic: concurrent calls each get their own number.
        count = memory.increment(counter_key(req.session_id))
        log.info(f"message {count} of session {req.session_id}")
        return Response(answer(req.text, count)).with_data({"count": count})


# The class componentize-py instantiates and calls.
WitWorld = export({Type})
