"""The command line: `python -m turtle_core COMMAND ...`."""
