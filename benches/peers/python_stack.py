"""The Python agent stack a user would otherwise pick, as the peer of
agentkernel's chat routes in benches/chat_load.rs: FastAPI on uvicorn, the
official `openai` client against the same zero-latency scripted LLM, and the
same agents written as plain async Python functions over SQLite (WAL), one
connection per worker process. A minimal router in the style of the OpenAI
Agents SDK's handoffs, without its per-run tracing and tool-schema work, so
the comparison favours the peer.

The agents do what agentkernel's bundled ones do:
- `echo` answers the message;
- `notes` appends the turn to its history, takes a note number from a
  counter, stores the note and appends its answer (five memory operations);
- `summarizer` asks the LLM (profile `fast`) for a summary;
- `synthesizer` combines several agents' answers with one more LLM call.
`POST /v1/chat` runs the requested agents concurrently, synthesises when
there is more than one, and commits the user and assistant turns to the
session's transcript; `POST /v1/agents/{name}/call` calls one agent.

No resource bounds: it is a benchmark peer, not a service. Started by the
bench as `python -m uvicorn python_stack:app --workers 2 --app-dir benches/peers`
with PYSTACK_DB and PYSTACK_LLM_BASE_URL set.
"""
import asyncio
import os
import sqlite3
import uuid

from fastapi import FastAPI, HTTPException
from openai import AsyncOpenAI
from pydantic import BaseModel

MODEL = os.environ.get("PYSTACK_MODEL", "test-model")
llm = AsyncOpenAI(base_url=os.environ["PYSTACK_LLM_BASE_URL"], api_key="unused", max_retries=0)


def connect(path: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("pragma busy_timeout = 5000")
    db.execute("pragma journal_mode = wal")
    db.execute("pragma synchronous = normal")
    db.executescript(
        """
        create table if not exists memory (agent text, key text, value text, primary key (agent, key));
        create table if not exists history (agent text, session text, role text, text text);
        create table if not exists transcript (session text, role text, text text);
        """
    )
    return db


db = connect(os.environ["PYSTACK_DB"])


class Memory:
    """One agent's key-value store and history, like the `memory` capability."""

    def __init__(self, agent: str):
        self.agent = agent

    def get(self, key: str):
        row = db.execute("select value from memory where agent = ? and key = ?", (self.agent, key)).fetchone()
        return row[0] if row else None

    def set(self, key: str, value: str):
        db.execute(
            "insert into memory values (?, ?, ?) on conflict (agent, key) do update set value = excluded.value",
            (self.agent, key, value),
        )

    def increment(self, key: str) -> int:
        row = db.execute(
            "insert into memory values (?, ?, '1') on conflict (agent, key) "
            "do update set value = cast(value as integer) + 1 returning value",
            (self.agent, key),
        ).fetchone()
        return int(row[0])

    def append_history(self, session: str, role: str, text: str):
        db.execute("insert into history values (?, ?, ?, ?)", (self.agent, session, role, text))


async def chat(system: str, user: str, max_tokens: int) -> str:
    reply = await llm.chat.completions.create(
        model=MODEL,
        messages=[{"role": "system", "content": system}, {"role": "user", "content": user}],
        temperature=0.2,
        max_tokens=max_tokens,
    )
    return (reply.choices[0].message.content or "").strip()


async def echo(session: str, text: str) -> str:
    return text


async def notes(session: str, text: str) -> str:
    memory = Memory("notes")
    memory.append_history(session, "user", text)
    lower = text.strip().lower()
    if lower.startswith("remember "):
        note = text.strip()[len("remember "):].strip()
        if memory.get(f"session/{session}/next-note") is None:
            memory.set(f"session/{session}/next-note", "0")
        number = memory.increment(f"session/{session}/next-note") - 1
        memory.set(f"session/{session}/note/{number:08}", note)
        answer = f"Noted: {note}"
    else:
        answer = "Tell me `remember <something>`."
    memory.append_history(session, "assistant", answer)
    return answer


async def summarizer(session: str, text: str) -> str:
    return await chat(
        "Summarise the user's text in at most two sentences. Reply with the summary only.", text[:16_000], 200
    )


async def synthesize(question: str, answers: list[tuple[str, str]]) -> str:
    listing = "\n\n".join(f"[{agent}]\n{text}" for agent, text in answers)
    return await chat(
        "Several agents answered the user's question. Write one clear answer that combines what they "
        "said, without inventing anything they did not say. Reply with the answer only.",
        f"Question: {question}\n\nAnswers:\n{listing}",
        600,
    )


AGENTS = {"echo": echo, "notes": notes, "summarizer": summarizer}

app = FastAPI()


class ChatRequest(BaseModel):
    message: str
    agents: list[str]
    session_id: str | None = None


class CallRequest(BaseModel):
    text: str
    session_id: str = "default"


@app.post("/v1/chat")
async def chat_route(req: ChatRequest):
    unknown = [a for a in req.agents if a not in AGENTS]
    if unknown or not req.agents:
        raise HTTPException(400, f"unknown agents: {unknown}")
    session = req.session_id or uuid.uuid4().hex
    texts = await asyncio.gather(*(AGENTS[a](session, req.message) for a in req.agents))
    answers = list(zip(req.agents, texts))
    reply = texts[0] if len(answers) == 1 else await synthesize(req.message, answers)
    db.execute("begin")
    db.executemany(
        "insert into transcript values (?, ?, ?)", [(session, "user", req.message), (session, "assistant", reply)]
    )
    db.execute("commit")
    return {"session_id": session, "reply": reply, "answers": [{"agent": a, "text": t} for a, t in answers]}


@app.post("/v1/agents/{name}/call")
async def call_route(name: str, req: CallRequest):
    if name not in AGENTS:
        raise HTTPException(404, f"no agent {name}")
    return {"text": await AGENTS[name](req.session_id, req.text), "data": None}
