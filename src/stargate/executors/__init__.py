"""Executors run placed jobs on real engines; ``local`` (subprocesses) is the embedded default."""
