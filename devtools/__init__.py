"""Helpers for running the stack on one machine: the embedded Redis and child processes.

Shared by scripts/run.py (``make run``) and tests/conftest.py, so both start Redis the same way.
"""
