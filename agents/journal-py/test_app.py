"""Unit tests of journal-py under a plain Python, with the SDK's fakes in
place of the host: `python3 -m unittest discover -s agents/journal-py`."""
import json
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(HERE, "..", "..", "sdk", "python")]

from agentkernel import InvalidRequest, Request  # noqa: E402
from agentkernel.testing import FakeHost  # noqa: E402

import app  # noqa: E402
from app import Journal, parse  # noqa: E402


class Parse(unittest.TestCase):
    def test_commands(self):
        self.assertEqual(parse("journal: walked to the lake"), ("add", "walked to the lake"))
        self.assertEqual(parse("Diary:  rain all day. Read a book. "), ("add", "rain all day. Read a book."))
        self.assertEqual(parse("Dear diary, I met Ana"), ("add", "I met Ana"))
        self.assertEqual(parse("journal:   "), ("unknown", None))
        self.assertEqual(parse("read my journal"), ("read", None))
        self.assertEqual(parse("Show journal entries"), ("read", None))
        self.assertEqual(parse("summarize my journal"), ("summarize", None))
        self.assertEqual(parse("give me a summary of my diary"), ("summarize", None))
        self.assertEqual(parse("clear my journal"), ("clear", None))
        self.assertEqual(parse("summarize this article"), ("unknown", None))
        self.assertEqual(parse("hello"), ("unknown", None))

    def test_entries_are_bounded_and_keys_scoped(self):
        kind, entry = parse("journal: " + "x" * 5000)
        self.assertEqual((kind, len(entry)), ("add", app.MAX_ENTRY_CHARS))
        self.assertFalse(app.prefix("a").startswith(app.prefix("b")))
        self.assertFalse(app.counter_key("a").startswith(app.prefix("a")), "listing must skip the counter")

    def test_fallback_summary(self):
        self.assertEqual(app.fallback_summary(["Rain. Then sun.", "Met Ana! Long talk.", "no stop"]), "Rain. Met Ana! no stop")


class Handle(unittest.TestCase):
    def ask(self, text, session="s1"):
        return Journal().handle(Request(session, text))

    def test_add_read_clear_per_session(self):
        with FakeHost() as host:
            self.assertEqual(self.ask("journal: rain all day").text, "Entry 1 saved.")
            self.assertEqual(self.ask("dear diary, read a book").text, "Entry 2 saved.")
            self.assertEqual(self.ask("journal: elsewhere", session="s2").text, "Entry 1 saved.")
            r = self.ask("read my journal")
            self.assertEqual(r.text, "1. rain all day\n2. read a book")
            self.assertEqual(json.loads(r.data), ["rain all day", "read a book"])
            self.assertEqual(host.memory.data["session/s1/journal/entry/00000002"], b"read a book")
            self.assertEqual([t.role for t in host.memory.histories["s1"]], ["user", "user"])
            self.assertEqual(self.ask("clear my journal").text, "Cleared 2 journal entries.")
            self.assertEqual(self.ask("read my journal").text, "Your journal is empty.")
            self.assertEqual(self.ask("read my journal", session="s2").text, "1. elsewhere")

    def test_summary_from_the_model(self):
        with FakeHost(llm=lambda messages, options: " You walked and read. ") as host:
            self.ask("journal: walked. It was cold.")
            self.ask("journal: read a novel")
            r = self.ask("summarize my journal")
            self.assertEqual(r.text, "You walked and read.")
            self.assertEqual(json.loads(r.data), {"entries": 2, "summary_by": "llm"})
            messages, options = host.llm.calls[0]
            self.assertEqual(options.profile, "fast")
            self.assertEqual(messages[1].content, "1. walked. It was cold.\n2. read a novel")

    def test_summary_without_a_model(self):
        with FakeHost() as host:  # no model: not-configured
            self.assertEqual(self.ask("summarize my journal").text, "Your journal is empty: nothing to summarise.")
            self.ask("journal: walked. It was cold.")
            r = self.ask("summarize my journal")
            self.assertEqual(r.text, "walked.")
            self.assertEqual(json.loads(r.data)["summary_by"], "first-sentences")
            self.assertEqual(host.logs, [("warn", "journal summary without the model: not-configured")])

    def test_empty_request_is_invalid(self):
        with FakeHost():
            with self.assertRaises(InvalidRequest):
                self.ask("   ")
            self.assertIn("journal:", self.ask("what?").text)

    def test_manifest(self):
        m = Journal().describe()
        self.assertEqual(m.name, "journal-py")
        self.assertRegex(m.name, r"^[a-z0-9-]+$")
        self.assertIn("journal", m.skills[0].keywords)
        self.assertEqual([c.name for c in m.capabilities], ["memory", "llm", "log"])


if __name__ == "__main__":
    unittest.main()
