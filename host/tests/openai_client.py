"""Drives agentkernel's OpenAI facade with the official `openai` client.

Usage: openai_client.py BASE_URL API_KEY. Prints one JSON object of what
the client saw; host/tests/openai_client.rs checks it."""
import json
import sys

import openai

base_url, key = sys.argv[1], sys.argv[2]
client = openai.OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=30)
seen = {}

seen["models"] = sorted(m.id for m in client.models.list())

r = client.chat.completions.create(model="echo", messages=[{"role": "user", "content": "hello there"}])
seen["echo"] = {"content": r.choices[0].message.content, "finish": r.choices[0].finish_reason, "object": r.object}

r = client.chat.completions.create(
    model="auto",
    messages=[
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "remember that the milk is gone"},
    ],
)
extra = r.model_extra or {}
seen["auto"] = {"content": r.choices[0].message.content, "agents": extra.get("agentkernel", {}).get("agents")}

chunks = client.chat.completions.create(
    model="echo", messages=[{"role": "user", "content": "streamed words"}], stream=True
)
deltas, finish = [], None
for c in chunks:
    if c.choices:
        deltas.append(c.choices[0].delta.content or "")
        finish = c.choices[0].finish_reason or finish
seen["stream"] = {"text": "".join(deltas), "finish": finish, "chunks": len(deltas)}

# The summarizer's model streams word by word: each word is its own chunk.
chunks = client.chat.completions.create(
    model="summarizer", messages=[{"role": "user", "content": "Cats sleep sixteen hours a day."}], stream=True
)
content, usage = [], None
for c in chunks:
    if c.choices and c.choices[0].delta.content:
        content.append(c.choices[0].delta.content)
    usage = c.usage or usage
seen["llm_stream"] = {
    "text": "".join(content),
    "content_chunks": len(content),
    "total_tokens": usage and usage.total_tokens,
    "prompt_tokens": usage and usage.prompt_tokens,
    "completion_tokens": usage and usage.completion_tokens,
}

try:
    client.chat.completions.create(model="no-such-agent", messages=[{"role": "user", "content": "x"}])
    seen["unknown_model"] = "no error"
except openai.NotFoundError as e:
    seen["unknown_model"] = e.status_code

try:
    openai.OpenAI(base_url=base_url, api_key="wrong-key-0123456789", max_retries=0).models.list()
    seen["bad_key"] = "no error"
except openai.AuthenticationError as e:
    seen["bad_key"] = e.status_code

print(json.dumps(seen))
