"""Drives agentkernel's MCP endpoint (POST /mcp) with the official `mcp` client.

Usage: mcp_client.py BASE_URL TOKEN SCENARIO [ARGS...]
(TOKEN "-" sends no Authorization header)

  list             initialize, then tools/list
  call NAME TEXT   initialize, then tools/call NAME {"text": TEXT}, collecting progress
  call-plain NAME TEXT   the same without asking for progress
  noauth           initialize only, reporting the error it raises

Prints one JSON object of what the client saw, for the host's MCP test to check.
Errors print as {"error", "type", "code"}: the expected outcome of `noauth`
(exit 0), anything unexpected otherwise (exit 2). Run it with
$AGENTKERNEL_MCP_PYTHON (scripts/deps/mcp-client.sh)."""
import json
import sys

import anyio
import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client


def error(e):
    # anyio task groups wrap errors; report the single one inside.
    while isinstance(e, BaseExceptionGroup) and len(e.exceptions) == 1:
        e = e.exceptions[0]
    return {"error": str(e), "type": type(e).__name__, "code": getattr(e, "code", None)}


async def run(base_url, token, scenario, args):
    headers = {} if token == "-" else {"Authorization": f"Bearer {token}"}
    url = base_url.rstrip("/") + "/mcp"
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write, read_timeout_seconds=30) as session,
    ):
        init = await session.initialize()  # for `noauth`, this is expected to raise
        if scenario == "noauth":
            return {"error": None, "type": None}
        if scenario == "list":
            listed = await session.list_tools()
            return {
                "server": {"name": init.server_info.name, "version": init.server_info.version},
                "protocol": init.protocol_version,
                "tools": [
                    {
                        "name": t.name,
                        "description": t.description,
                        "inputSchema": t.input_schema,
                        "outputSchema": t.output_schema,
                    }
                    for t in listed.tools
                ],
            }
        if scenario in ("call", "call-plain"):
            name, text = args
            progress = []

            async def on_progress(value, total, message):
                progress.append({"progress": value, "total": total, "message": message})

            # With a callback the client sends a progressToken and the host
            # answers with server-sent events; without, with one JSON body.
            callback = on_progress if scenario == "call" else None
            r = await session.call_tool(name, {"text": text}, progress_callback=callback)
            await anyio.sleep(0.1)  # progress callbacks run as tasks of their own
            return {
                "isError": r.is_error,
                "text": "".join(c.text for c in r.content if c.type == "text"),
                "structured": r.structured_content,
                "progress": progress,
            }
        raise ValueError(f"unknown scenario {scenario!r}")


def main():
    base_url, token, scenario, *args = sys.argv[1:]
    try:
        print(json.dumps(anyio.run(run, base_url, token, scenario, args)))
    except Exception as e:
        print(json.dumps(error(e)))
        sys.exit(0 if scenario == "noauth" else 2)


if __name__ == "__main__":
    main()
