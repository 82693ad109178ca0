"""Imported at start-up by the browser tests' app server (it is put first on PYTHONPATH).

Lowers TURTLE's outer step count (`TURTLE_TEST_OUTER_STEPS`, default 300) so that the real engine runs
the whole curator loop in CI time on 2 CPU cores. Everything else is the real app and engine."""

from __future__ import annotations

import os

_steps = os.environ.get("TURTLE_TEST_OUTER_STEPS")
if _steps:
    from turtle_core.turtle import Turtle

    Turtle.__init__.__kwdefaults__["outer_steps"] = int(_steps)
