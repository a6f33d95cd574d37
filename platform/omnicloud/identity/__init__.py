"""Users, roles, permissions and API keys."""
