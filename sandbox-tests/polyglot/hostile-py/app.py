"""Hostile guest `hostile-py`: `spin` loops forever, `grow` allocates
without bound; anything else answers at once."""
from agentkernel import Agent, Manifest, Response, export, log


class Hostile(Agent):
    def describe(self):
        return Manifest("hostile-py", "0.1.0", "Hostile guest: spins or grows memory until the host stops it.").capability(
            "log", "says what it is about to do"
        )

    def handle(self, req):
        what = req.text.strip()
        if what == "spin":
            log.warn("hostile-py: spinning")
            n = 0
            while True:
                n += 1
        if what == "grow":
            log.warn("hostile-py: growing")
            hoard = []
            while True:
                # Written, not just reserved: 1 MiB of bytes per step, all kept.
                hoard.append(bytes([len(hoard) & 0xFF]) * (1 << 20))
        return Response(f"hostile-py is here; say `spin` or `grow` (got {what!r})")


WitWorld = export(Hostile)
