"""Helpers the test modules share: job bodies, response checks, ways to run the API.

Fixtures live in tests/conftest.py; nothing here is a test or a fixture, so no test module
needs to import another.
"""
