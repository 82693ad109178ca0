"""The fault campaign's machinery: sandboxes of a real project, killable worker processes, the faults, and
what is checked after each (reopened, edits lost, files touched outside, crashes shown to the user).

`benchmarks/faults.py` runs many random runs of every fault kind; `tests/test_faults.py` a few of each.
"""
