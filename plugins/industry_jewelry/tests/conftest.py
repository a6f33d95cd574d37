"""The platform's test fixtures, for the jewelry pack's tests (they live outside tests/)."""

from tests.conftest import app, backend, client, tenant_a, tenant_b  # noqa: F401
