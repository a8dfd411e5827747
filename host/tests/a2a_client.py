"""Drives agentkernel's A2A endpoint with the official `a2a-sdk` client
(protocol 1.0, JSON-RPC binding).

Usage: a2a_client.py BASE_URL COMMAND [ARGS...]
A bearer token is taken from $AGENTKERNEL_A2A_TOKEN when set. It reaches the
server only through the SDK's AuthInterceptor, that is only if the card
declares an HTTP bearer scheme in `securitySchemes` and `securityRequirements`
(the card itself is fetched without it).

  card                          GET BASE_URL/.well-known/agent-card.json
  send TEXT [AGENT] [CONTEXT]   SendMessage; AGENT ("" for none) goes in
                                message.metadata.agent, CONTEXT in contextId
  stream TEXT [AGENT] [CONTEXT] SendStreamingMessage (SSE), every event in order
  send-nowait TEXT [AGENT]      SendMessage with configuration.returnImmediately
  extended-card                 GetExtendedAgentCard (authenticated)
  get TASK_ID [HISTORY_LENGTH]  GetTask
  cancel TASK_ID                CancelTask

Prints one JSON object of what the client saw, for the host's A2A test to
check:
  card    name, description, version, streaming, interfaces [{url,
          protocolBinding, protocolVersion}], defaultInput/OutputModes, skills
          [{id, name, description, tags}], securitySchemes, securityRequirements
          (scheme names per requirement), raw
  send, get, cancel  kind ("task" or "message"), taskId, contextId, state
          (TASK_STATE_*, null for a message), statusText (status.message),
          artifactText, text (artifacts, else status message), data (the data
          parts, whole numbers as ints), historyLength, raw, calls
  stream  events [{kind: task|message|statusUpdate|artifactUpdate, state,
          text, data, artifactId, append, lastChunk}], kinds, states, state
          (the last), taskId, contextId, artifactText (chunks joined per
          artifact), text, data, last (the last whole task or message), calls
`calls` lists the client methods that ran ({method, authorized}): a card
without capabilities.streaming makes `stream` a plain send_message. Whatever the client raises prints as
{"error": {"type", "code", "message", "httpStatus"}} with exit 0 (`code` is
the JSON-RPC error code when the server sent one); bad usage exits 2. Run it
with $AGENTKERNEL_A2A_PYTHON (scripts/deps/a2a-client.sh)."""
import asyncio
import json
import os
import re
import sys
import uuid

import httpx
from google.protobuf.json_format import MessageToDict

from a2a.client import (
    A2ACardResolver,
    AuthInterceptor,
    ClientCallInterceptor,
    ClientConfig,
    ClientFactory,
    CredentialService,
)
from a2a.helpers import get_data_parts, get_text_parts
from a2a.types.a2a_pb2 import (
    CancelTaskRequest,
    GetExtendedAgentCardRequest,
    GetTaskRequest,
    Message,
    Part,
    Role,
    SendMessageRequest,
    TaskState,
)
from a2a.utils.errors import JSON_RPC_ERROR_CODE_MAP


def plain(value):
    """JSON numbers come back from protobuf as doubles: 1 -> 1.0. Undo that
    for whole numbers so the Rust side can compare with json!(1)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def to_dict(proto):
    return plain(MessageToDict(proto))


def state_name(state):
    return TaskState.Name(state)


class Token(CredentialService):
    """The one token, for whatever scheme the card names."""

    def __init__(self, token):
        self.token = token

    async def get_credentials(self, security_scheme_name, context):
        return self.token


class Recorder(ClientCallInterceptor):
    """Notes which client method ran (a card without `capabilities.streaming`
    silently turns a streaming send into a plain SendMessage), and whether
    the AuthInterceptor put an Authorization header on it."""

    def __init__(self):
        self.calls = []

    async def before(self, args):
        params = (args.context.service_parameters or {}) if args.context else {}
        self.calls.append({"method": args.method, "authorized": "Authorization" in params})

    async def after(self, args):
        pass


def error(e):
    code = JSON_RPC_ERROR_CODE_MAP.get(type(e))
    message = getattr(e, "message", None) or str(e)
    status = getattr(e, "status_code", None)
    if code is None:
        # Unmapped JSON-RPC codes surface as A2AClientError("JSON-RPC Error <code>: <message>").
        m = re.match(r"JSON-RPC Error (-?\d+): (.*)", message, re.S)
        if m:
            code, message = int(m.group(1)), m.group(2)
    cause = e.__cause__
    if status is None and isinstance(cause, httpx.HTTPStatusError):
        status = cause.response.status_code
    out = {"type": type(e).__name__, "code": code, "message": message, "httpStatus": status}
    data = getattr(e, "data", None)
    if data:
        out["data"] = data
    return {"error": out}


def task_summary(task):
    """The parts of a Task a test asserts on, plus the whole of it."""
    status_text = get_text_parts(task.status.message.parts) if task.status.HasField("message") else []
    artifact_text = [t for a in task.artifacts for t in get_text_parts(a.parts)]
    data = [d for a in task.artifacts for d in get_data_parts(a.parts)]
    if task.status.HasField("message"):
        data += get_data_parts(task.status.message.parts)
    return {
        "kind": "task",
        "taskId": task.id,
        "contextId": task.context_id,
        "state": state_name(task.status.state),
        "statusText": "".join(status_text),
        "artifactText": "".join(artifact_text),
        "text": "".join(artifact_text) or "".join(status_text),
        "data": plain(data),
        "historyLength": len(task.history),
        "raw": to_dict(task),
    }


def message_summary(msg):
    text = "".join(get_text_parts(msg.parts))
    return {
        "kind": "message",
        "taskId": msg.task_id,
        "contextId": msg.context_id,
        "role": Role.Name(msg.role),
        "state": None,
        "text": text,
        "data": plain(get_data_parts(msg.parts)),
        "raw": to_dict(msg),
    }


def user_message(text, agent, context_id, return_immediately=False):
    msg = Message(
        role=Role.ROLE_USER,
        parts=[Part(text=text)],
        message_id=str(uuid.uuid4()),
        context_id=context_id or None,
    )
    if agent:
        msg.metadata.update({"agent": agent})
    request = SendMessageRequest(message=msg)
    if return_immediately:
        request.configuration.return_immediately = True
    return request


def card_summary(card):
    return {
        "name": card.name,
        "description": card.description,
        "version": card.version,
        "streaming": card.capabilities.streaming if card.capabilities.HasField("streaming") else None,
        "interfaces": [
            {"url": i.url, "protocolBinding": i.protocol_binding, "protocolVersion": i.protocol_version}
            for i in card.supported_interfaces
        ],
        "defaultInputModes": list(card.default_input_modes),
        "defaultOutputModes": list(card.default_output_modes),
        "skills": [
            {"id": s.id, "name": s.name, "description": s.description, "tags": list(s.tags)}
            for s in card.skills
        ],
        "securitySchemes": {k: to_dict(v) for k, v in card.security_schemes.items()},
        "securityRequirements": [sorted(r.schemes.keys()) for r in card.security_requirements],
        "raw": to_dict(card),
    }


async def run(base_url, command, args):
    token = os.environ.get("AGENTKERNEL_A2A_TOKEN")
    async with httpx.AsyncClient(timeout=30) as http:
        card = await A2ACardResolver(http, base_url).get_agent_card()
        if command == "card":
            return card_summary(card)

        recorder = Recorder()
        interceptors = ([AuthInterceptor(Token(token))] if token else []) + [recorder]
        streaming = command == "stream"
        factory = ClientFactory(ClientConfig(streaming=streaming, httpx_client=http))
        client = factory.create(card, interceptors=interceptors)

        if command == "extended-card":
            return {**card_summary(await client.get_extended_agent_card(GetExtendedAgentCardRequest())), "calls": recorder.calls}
        if command in ("send", "stream", "send-nowait"):
            text, agent, context_id = (list(args) + ["", ""])[:3]
            events = []
            ids = {}  # taskId and contextId, from whichever event names them first
            texts = {}  # artifactId -> text, honouring `append`
            last = None
            request = user_message(text, agent, context_id, return_immediately=command == "send-nowait")
            async for event in client.send_message(request):
                for field in ("task", "status_update", "artifact_update", "message"):
                    if event.HasField(field):
                        inner = getattr(event, field)
                        tid = inner.id if field == "task" else inner.task_id
                        ids.setdefault("taskId", tid or None)
                        ids.setdefault("contextId", inner.context_id or None)
                if event.HasField("task"):
                    last = task_summary(event.task)
                    events.append({"kind": "task", "state": last["state"]})
                    for a in event.task.artifacts:
                        texts[a.artifact_id] = "".join(get_text_parts(a.parts))
                elif event.HasField("message"):
                    last = message_summary(event.message)
                    events.append({"kind": "message", "state": None})
                elif event.HasField("status_update"):
                    u = event.status_update
                    events.append({
                        "kind": "statusUpdate",
                        "state": state_name(u.status.state),
                        "text": "".join(get_text_parts(u.status.message.parts)),
                        "data": plain(get_data_parts(u.status.message.parts)),
                    })
                elif event.HasField("artifact_update"):
                    u = event.artifact_update
                    chunk = "".join(get_text_parts(u.artifact.parts))
                    texts[u.artifact.artifact_id] = (texts.get(u.artifact.artifact_id, "") if u.append else "") + chunk
                    events.append({
                        "kind": "artifactUpdate",
                        "artifactId": u.artifact.artifact_id,
                        "append": u.append,
                        "lastChunk": u.last_chunk,
                        "text": chunk,
                        "data": plain(get_data_parts(u.artifact.parts)),
                    })
            if not streaming:
                return {**(last or {}), "calls": recorder.calls}
            states = [e["state"] for e in events if e.get("state")]
            status_texts = [e["text"] for e in events if e["kind"] == "statusUpdate" and e["text"]]
            return {
                "events": events,
                "kinds": [e["kind"] for e in events],
                "states": states,
                "state": states[-1] if states else None,
                "taskId": ids.get("taskId"),
                "contextId": ids.get("contextId"),
                "artifactText": "".join(texts.values()),
                "text": "".join(texts.values())
                or (status_texts[-1] if status_texts else "")
                or (last or {}).get("text", ""),
                "data": [d for e in events for d in e.get("data", [])],
                "last": last,  # the last whole task or message event
                "calls": recorder.calls,
            }
        if command == "get":
            request = GetTaskRequest(id=args[0])
            if len(args) > 1:
                request.history_length = int(args[1])
            return {**task_summary(await client.get_task(request)), "calls": recorder.calls}
        if command == "cancel":
            return {**task_summary(await client.cancel_task(CancelTaskRequest(id=args[0]))), "calls": recorder.calls}
    raise ValueError(f"unknown command {command!r}")


def main():
    if len(sys.argv) < 3 or sys.argv[2] not in ("card", "extended-card", "send", "send-nowait", "stream", "get", "cancel"):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    base_url, command, *args = sys.argv[1:]
    try:
        out = asyncio.run(run(base_url, command, args))
    except Exception as e:  # A2AError subclasses, or a protobuf ParseError from a malformed result, say
        out = error(e)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
