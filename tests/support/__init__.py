"""What the tests (and loadtests/) share, as plain modules; nothing here is collected as a test.

Test modules import from here, never from each other; conftest.py files only
wire these helpers into fixtures.
"""
