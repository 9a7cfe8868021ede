"""Hypothesis without its per-example deadline: the suite runs in parallel workers on machines
that are busy with other work, where one example of a pure function took 293 ms against the
default 200 ms deadline. A slow example is no failure of hookrun; the tests' own timeouts still
stop a hang."""

from hypothesis import settings

settings.register_profile("hookrun", deadline=None)
settings.load_profile("hookrun")
