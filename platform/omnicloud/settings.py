"""Runtime settings, read once from ``OMNICLOUD_*`` environment variables.

Every setting is listed in docs/configuration.md; the defaults give the embedded mode
(a SQLite file in the working directory and in-process stores).
"""

from __future__ import annotations

import os

import msgspec


class Settings(msgspec.Struct, kw_only=True, frozen=True):
    database_url: str = "sqlite+aiosqlite:///omnicloud.db"
    # Migrations and role management run as the owner of the tables; the app itself should
    # connect as a role that neither owns them nor bypasses row-level security.
    migration_database_url: str | None = None
    db_pool_size: int = 20  # connections per process (PostgreSQL); size it to the expected concurrency
    redis_url: str | None = None
    redis_prefix: str = "omnicloud"  # every Redis key and channel starts with it
    operator_token: str | None = None
    plugins: tuple[str, ...] | None = None  # allowlist of installed plugins; None allows all
    max_body_bytes: int = 1_048_576
    max_lines: int = 1000
    page_limit_default: int = 50
    page_limit_max: int = 200
    rate_limit_per_key: int = 600  # requests per minute per API key
    rate_limit_per_tenant: int = 6000  # requests per minute per tenant
    auth_cache_seconds: float = 30.0
    webhook_timeout_seconds: float = 5.0
    webhook_max_attempts: int = 8
    cors_origins: tuple[str, ...] = ()
    debug: bool = False

    @property
    def owner_database_url(self) -> str:
        return self.migration_database_url or self.database_url

    @property
    def is_postgres(self) -> bool:
        return self.database_url.startswith("postgresql")

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: object) -> Settings:
        env = os.environ if environ is None else environ
        raw: dict[str, object] = {}
        for field in msgspec.structs.fields(cls):
            value = env.get(f"OMNICLOUD_{field.name.upper()}")
            if value is None or value == "":
                continue
            if field.name in ("plugins", "cors_origins"):
                raw[field.name] = tuple(p.strip() for p in value.split(",") if p.strip())
            else:
                raw[field.name] = value
        raw.update(overrides)
        try:
            return msgspec.convert(raw, cls, strict=False)
        except msgspec.ValidationError as exc:
            raise SystemExit(f"invalid OMNICLOUD_* setting: {exc}") from None
