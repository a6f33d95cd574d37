"""REST routes of this domain."""

from typing import Any

ROUTES: list[Any] = []
