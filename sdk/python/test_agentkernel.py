"""The SDK's WIT side under a plain Python: componentize-py generates the
bindings of journal-py's world (their functions are stubs natively), the
tests put recorders in their place and check what the SDK sends and how it
maps results and errors. Needs componentize-py (scripts/deps/polyglot.sh
exports AGENTKERNEL_COMPONENTIZE_PY); skipped without it.

    $AGENTKERNEL_POLYGLOT_PYTHON -m unittest discover -s sdk/python
"""
import json
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
AGENT = os.path.join(ROOT, "agents", "journal-py")
TOOL = os.environ.get("AGENTKERNEL_COMPONENTIZE_PY")


@unittest.skipUnless(TOOL and sys.version_info >= (3, 11), "needs componentize-py (scripts/deps/polyglot.sh) and Python 3.11+")
class WitSide(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        subprocess.run([TOOL, "-q", "-d", os.path.join(AGENT, "wit"), "-w", "journal-py", "bindings", cls.tmp.name], check=True)
        sys.path[:0] = [cls.tmp.name, AGENT, HERE]
        global Err, t, raw_memory, raw_llm, raw_log, agentkernel, app
        from componentize_py_types import Err
        from wit_world.imports import llm as raw_llm
        from wit_world.imports import log as raw_log
        from wit_world.imports import memory as raw_memory
        from wit_world.imports import types as t

        import agentkernel
        import app

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def setUp(self):
        self.calls = []
        self.saved = []

    def tearDown(self):
        for module, name, fn in self.saved:
            setattr(module, name, fn)

    def stub(self, module, name, fn):
        self.saved.append((module, name, getattr(module, name)))

        def record(*args):
            self.calls.append((name, args))
            return fn(*args)

        setattr(module, name, record)

    def test_describe_speaks_wit(self):
        m = app.WitWorld().describe()
        self.assertIsInstance(m, t.Manifest)
        self.assertEqual(m.name, "journal-py")
        self.assertIsInstance(m.skills[0], t.Skill)
        self.assertIsInstance(m.capabilities[0], t.CapabilityRequest)

    def test_handle_converts_request_memory_and_response(self):
        store = {}
        self.stub(raw_memory, "increment", lambda key, delta: 7)
        self.stub(raw_memory, "set", lambda key, value: store.__setitem__(key, value))
        self.stub(raw_memory, "append_history", lambda session, turn: None)
        req = t.Request("s1", "journal: hello", [t.Turn(t.Role.ASSISTANT, "hi")], None)
        r = app.WitWorld().handle(req)
        self.assertIsInstance(r, t.Response)
        self.assertEqual((r.text, json.loads(r.data)), ("Entry 7 saved.", {"entry": 7}))
        self.assertEqual(store, {"session/s1/journal/entry/00000007": b"hello"})
        self.assertEqual(self.calls[0], ("increment", ("session/s1/journal/count", 1)))
        turn = self.calls[-1][1][1]
        self.assertEqual((turn.role, turn.content), (t.Role.USER, "journal: hello"))

    def test_memory_errors_become_capability_failed(self):
        def full(key, delta):
            raise Err(raw_memory.MemoryError_QuotaExceeded("100 keys"))

        self.stub(raw_memory, "increment", full)
        with self.assertRaises(agentkernel.memory.Error) as e:
            agentkernel.memory.increment("k")
        self.assertEqual((e.exception.code, e.exception.detail), ("quota-exceeded", "100 keys"))
        with self.assertRaises(Err) as e:
            app.WitWorld().handle(t.Request("s", "journal: x", [], None))
        self.assertEqual(e.exception.value, t.AgentError_CapabilityFailed("memory: quota-exceeded: 100 keys"))

    def test_errors_map_to_agent_error_cases(self):
        with self.assertRaises(Err) as e:
            app.WitWorld().handle(t.Request("s", "  ", [], None))
        self.assertEqual(e.exception.value, t.AgentError_InvalidRequest("empty request"))

        class Buggy(agentkernel.Agent):
            def handle(self, req):
                return {}["missing"]

        with self.assertRaises(Err) as e:
            agentkernel.export(Buggy)().handle(t.Request("s", "x", [], None))
        self.assertEqual(e.exception.value, t.AgentError_Failed("KeyError: 'missing'"))

    def test_memory_batch_history_and_cas(self):
        self.stub(raw_memory, "batch", lambda ops: None)
        self.stub(raw_memory, "compare_and_swap", lambda key, expected, new: True)
        self.stub(raw_memory, "history", lambda session, limit: [t.Turn(t.Role.AGENT, "relayed")])
        agentkernel.memory.batch([("set", "a", "1"), ("delete", "b"), ("expect", "c", None)])
        ops = self.calls[0][1][0]
        self.assertEqual(ops, [raw_memory.BatchOp_Set(("a", b"1")), raw_memory.BatchOp_Delete("b"), raw_memory.BatchOp_Expect(("c", None))])
        self.assertTrue(agentkernel.memory.compare_and_swap("k", None, "v"))
        self.assertEqual(self.calls[1], ("compare_and_swap", ("k", None, b"v")))
        self.assertEqual(agentkernel.memory.history("s", 5), [agentkernel.Turn("agent", "relayed")])

    def test_llm_and_log(self):
        def chat(messages, options):
            return raw_llm.ChatReply("ok", [raw_llm.ToolCall("1", "f", "{}")], "stop", "m", raw_llm.Usage(3, 4))

        self.stub(raw_llm, "chat", chat)
        self.stub(raw_log, "write", lambda level, message: None)
        reply = agentkernel.llm.chat("fast", [agentkernel.llm.system("s"), "u"], max_tokens=9, json=True,
                                     tools=[agentkernel.llm.Tool("f", "d")])
        self.assertEqual((reply.content, reply.tool_calls[0].name, reply.usage.completion_tokens), ("ok", "f", 4))
        messages, options = self.calls[0][1]
        self.assertEqual(messages, [raw_llm.ChatMessage("system", "s", None, []), raw_llm.ChatMessage("user", "u", None, [])])
        self.assertEqual((options.profile, options.max_tokens, options.response_format), ("fast", 9, raw_llm.ResponseFormat.JSON_OBJECT))
        self.assertEqual(json.loads(options.tools[0].parameters_schema), {"type": "object", "properties": {}})
        agentkernel.log.warn("careful")
        self.assertEqual(self.calls[1], ("write", (raw_log.Level.WARN, "careful")))

        def not_configured(messages, options):
            raise Err(raw_llm.LlmError_NotConfigured())

        self.stub(raw_llm, "chat", not_configured)
        with self.assertRaises(agentkernel.llm.Error) as e:
            agentkernel.llm.chat("fast", ["u"])
        self.assertEqual((e.exception.code, str(e.exception)), ("not-configured", "llm: not-configured"))


if __name__ == "__main__":
    unittest.main()
