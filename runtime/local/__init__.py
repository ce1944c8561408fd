"""The embedded target's executor: a supervised pool of worker processes, and its runner."""
