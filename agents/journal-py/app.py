"""`journal-py`: a per-session journal in `memory`, summarised by the `llm`.

- `journal: <entry>` / `diary: <entry>` / `dear diary, <entry>`: adds an entry.
- `read my journal` / `show journal`: lists the entries, oldest first.
- `summarize my journal`: a short summary from the model (profile `fast`);
  without a model, the first sentence of each entry.
- `clear my journal`: deletes the entries.

The componentize-py entry point is `WitWorld` at the bottom; everything
above it is plain Python, unit-tested in test_app.py.
"""
from __future__ import annotations

import re

from agentkernel import Agent, InvalidRequest, Manifest, Request, Response, Skill, Turn, export, llm, log, memory

#: The most entries read, listed or summarised.
MAX_ENTRIES = 200
#: The longest entry kept, in characters.
MAX_ENTRY_CHARS = 2000

_MENTIONS = r"\b(journal|diary|entries)\b"


def parse(text: str) -> tuple[str, str | None]:
    """What a request asks for: (`add`, entry), (`read`|`summarize`|`clear`,
    None) or (`unknown`, None). Pure, so it is unit-tested natively."""
    t = text.strip()
    lower = t.lower()
    m = re.match(r"^(?:journal|diary)\s*:\s*(.*)$|^dear diary\s*[,:]?\s*(.*)$", t, re.IGNORECASE | re.DOTALL)
    if m:
        entry = (m.group(1) if m.group(1) is not None else m.group(2) or "").strip()
        return ("add", entry[:MAX_ENTRY_CHARS]) if entry else ("unknown", None)
    if re.search(_MENTIONS, lower):
        if re.search(r"\bsummar(y|ise|ize|ising|izing)\b|\btl;?dr\b", lower):
            return ("summarize", None)
        if re.match(r"^(clear|erase|wipe|delete)\b", lower):
            return ("clear", None)
        if re.match(r"^(read|show|list|what'?s in)\b", lower):
            return ("read", None)
    return ("unknown", None)


def prefix(session: str) -> str:
    return f"session/{session}/journal/entry/"


def counter_key(session: str) -> str:
    # Outside the entries' prefix, so listing the entries skips it.
    return f"session/{session}/journal/count"


def first_sentence(entry: str) -> str:
    m = re.match(r"(.+?[.!?])(\s|$)", entry, re.DOTALL)
    return (m.group(1) if m else entry).strip()


def fallback_summary(entries: list[str]) -> str:
    """The summary without a model: each entry's first sentence."""
    return " ".join(first_sentence(e) for e in entries)


def read_entries(session: str) -> list[str]:
    entries = []
    for key in memory.list_keys(prefix(session), MAX_ENTRIES):
        text = memory.get_str(key)
        if text is not None:
            entries.append(text)
    return entries


def summarize(entries: list[str]) -> tuple[str, str]:
    """(summary, how): from the model when one answers, else the fallback."""
    numbered = "\n".join(f"{i}. {e}" for i, e in enumerate(entries, 1))
    try:
        reply = llm.chat(
            "fast",
            [
                llm.system("Summarise these journal entries in at most two sentences, in the second person."),
                llm.user(numbered),
            ],
            max_tokens=120,
            temperature=0.2,
        )
        if reply.content.strip():
            return reply.content.strip(), "llm"
    except llm.Error as e:
        # No model, budget spent, upstream down: still answer.
        log.warn(f"journal summary without the model: {e.code}")
    return fallback_summary(entries), "first-sentences"


class Journal(Agent):
    def describe(self) -> Manifest:
        return (
            Manifest("journal-py", "0.1.0", "Keeps a journal per session and summarises it on request (Python).")
            .skill(Skill("journal", "Add an entry to the journal, read it back or clear it", ["journal", "diary", "entry"]))
            .skill(Skill("journal-summary", "Summarise the journal's entries", ["journal", "diary", "entries"]))
            .capability("memory", "stores the journal entries of each session")
            .capability("llm", "summarises the entries")
            .capability("log", "notes when a summary goes without the model")
        )

    def handle(self, req: Request) -> Response:
        kind, entry = parse(req.text)
        session = req.session_id
        if kind == "add":
            # Atomic: concurrent entries each get their own number.
            number = memory.increment(counter_key(session))
            memory.set(f"{prefix(session)}{number:08}", entry)
            memory.append_history(session, Turn("user", req.text))
            return Response(f"Entry {number} saved.").with_data({"entry": number})
        if kind == "read":
            entries = read_entries(session)
            if not entries:
                return Response("Your journal is empty.")
            text = "\n".join(f"{i}. {e}" for i, e in enumerate(entries, 1))
            return Response(text).with_data(entries)
        if kind == "summarize":
            entries = read_entries(session)
            if not entries:
                return Response("Your journal is empty: nothing to summarise.")
            summary, how = summarize(entries)
            return Response(summary).with_data({"entries": len(entries), "summary_by": how})
        if kind == "clear":
            keys = memory.list_keys(prefix(session), 100_000)
            for key in keys:
                memory.delete(key)
            return Response(f"Cleared {len(keys)} journal entries.")
        if not req.text.strip():
            raise InvalidRequest("empty request")
        return Response("Write `journal: <entry>`, or ask me to read, summarize or clear your journal.")


# The class componentize-py instantiates and calls.
WitWorld = export(Journal)
