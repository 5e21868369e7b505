"""The workflows the commands call (init, join, reset; one node or a fleet): each returns a RunResult."""
