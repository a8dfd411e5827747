"""Unit tests of `{name}` under a plain Python, with the helper layer's fakes
in place of the host: `python3 -m unittest` in this directory."""
import json
import unittest

from agentkernel import InvalidRequest, Request
from agentkernel.testing import FakeHost

from app import {Type}, answer, counter_key


class Logic(unittest.TestCase):
    def test_answer(self):
        self.assertEqual(answer("  hi ", 3), "{name} heard: hi (message 3 of this session)")

    def test_sessions_have_their_own_counters(self):
        self.assertNotEqual(counter_key("a"), counter_key("b"))


class Handle(unittest.TestCase):
    def ask(self, text, session="s1"):
        return {Type}().handle(Request(session, text))

    def test_counts_messages_per_session(self):
        with FakeHost() as host:
            self.assertEqual(self.ask("hello").text, "{name} heard: hello (message 1 of this session)")
            r = self.ask("again")
            self.assertEqual(r.text, "{name} heard: again (message 2 of this session)")
            self.assertEqual(json.loads(r.data), {"count": 2})
            self.assertEqual(self.ask("hi", session="s2").text, "{name} heard: hi (message 1 of this session)")
            self.assertEqual(host.memory.data[counter_key("s1")], b"2")
            self.assertEqual(host.logs[0], ("info", "message 1 of session s1"))

    def test_empty_request_is_invalid(self):
        with FakeHost():
            with self.assertRaises(InvalidRequest):
                self.ask("   ")

    def test_manifest(self):
        m = {Type}().describe()
        self.assertEqual(m.name, "{name}")
        self.assertIn("{name}", m.skills[0].keywords)
        self.assertEqual([c.name for c in m.capabilities], ["memory", "log"])


if __name__ == "__main__":
    unittest.main()
