"""One set of test fixtures for the platform's tests and every plugin's tests."""

pytest_plugins = ["tests.fixtures"]
