"""pytest plugin (entry point ``pytest11``): fixtures for testing score.py files.

Fixtures are added by the test-helpers work (issue 5); this module must import cheaply because
pytest loads it in every environment where modelstore is installed.
"""
