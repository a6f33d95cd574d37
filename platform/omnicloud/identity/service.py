"""Identity use cases: roles, users, API keys, and authenticating a credential."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

import msgspec
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from omnicloud.core import audit, cache
from omnicloud.core.db import Database, utcnow
from omnicloud.core.errors import Conflict, Forbidden, NotFound, Unauthorized, invalid
from omnicloud.core.ids import new_id
from omnicloud.core.paging import paged_query, split_page
from omnicloud.core.security import (
    ParsedKey,
    Principal,
    display_prefix,
    format_api_key,
    hash_secret,
    new_secret,
    secret_matches,
)
from omnicloud.core.tenancy import tenant_scope
from omnicloud.identity.models import ApiKey, Role, User
from omnicloud.identity.permissions import BUILTIN_ROLES, CORE_PERMISSIONS
from omnicloud.identity.schemas import (
    ApiKeyCreated,
    ApiKeyIn,
    ApiKeyOut,
    RoleIn,
    RoleOut,
    UserIn,
    UserOut,
    UserPatch,
)

# --- roles --------------------------------------------------------------------------------


async def seed_builtin_roles(session: AsyncSession) -> dict[str, Role]:
    """Create the built-in roles that are missing; idempotent."""
    existing = {r.code: r for r in (await session.scalars(select(Role))).all()}
    for code, (name, perms) in BUILTIN_ROLES.items():
        if code not in existing:
            role = Role(code=code, name=name, permissions=list(perms), builtin=True)
            session.add(role)
            existing[code] = role
    await session.flush()
    return existing


def role_out(r: Role) -> RoleOut:
    return RoleOut(id=r.id, code=r.code, name=r.name, permissions=list(r.permissions), builtin=r.builtin)


async def list_roles(
    session: AsyncSession, cursor: str | None, limit: int
) -> tuple[list[RoleOut], str | None]:
    rows = (await session.scalars(paged_query(select(Role), Role.id, cursor, limit))).all()
    items, nxt = split_page(rows, limit)
    return [role_out(r) for r in items], nxt


async def create_role(session: AsyncSession, data: RoleIn, known_permissions: dict[str, str]) -> RoleOut:
    if data.code in BUILTIN_ROLES:
        raise invalid("code", f"{data.code} is a built-in role")
    for i, perm in enumerate(data.permissions):
        if perm != "*" and perm not in known_permissions:
            raise invalid(f"permissions[{i}]", f"unknown permission {perm!r}")
    role = Role(code=data.code, name=data.name, permissions=sorted(set(data.permissions)))
    session.add(role)
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict(f"role {data.code} exists", code="role_exists") from None
    audit.record(
        session, "create", "role", role.id, after={"code": role.code, "permissions": role.permissions}
    )
    return role_out(role)


async def _role_by_code(session: AsyncSession, code: str, field: str = "role") -> Role:
    role = await session.scalar(select(Role).where(Role.code == code))
    if role is None:
        raise invalid(field, f"no role {code!r}")
    return role


# --- users --------------------------------------------------------------------------------


def user_out(u: User, role_code: str) -> UserOut:
    return UserOut(
        id=u.id,
        email=u.email,
        name=u.name,
        role=role_code,
        customer_id=u.customer_id,
        status=u.status,
        created_at=u.created_at,
    )


async def create_user(session: AsyncSession, data: UserIn) -> UserOut:
    from omnicloud.channels import service as channels

    role = await _role_by_code(session, data.role)
    if data.customer_id is not None:
        await channels.require_customer(session, data.customer_id, field="customer_id")
    elif role.code == "dealer":
        raise invalid("customer_id", "a dealer user must be bound to a customer")
    user = User(email=data.email.lower(), name=data.name, role_id=role.id, customer_id=data.customer_id)
    session.add(user)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:
        raise Conflict(f"a user with email {data.email} exists", code="user_exists") from None
    audit.record(session, "create", "user", user.id, after={"email": user.email, "role": role.code})
    return user_out(user, role.code)


async def _user(session: AsyncSession, user_id: UUID) -> tuple[User, Role]:
    row = (
        await session.execute(
            select(User, Role).join(Role, Role.id == User.role_id).where(User.id == user_id)
        )
    ).first()
    if row is None:
        raise NotFound("no such user")
    return row[0], row[1]


async def get_user(session: AsyncSession, user_id: UUID) -> UserOut:
    user, role = await _user(session, user_id)
    return user_out(user, role.code)


async def update_user(session: AsyncSession, user_id: UUID, data: UserPatch, actor: Principal) -> UserOut:
    user, role = await _user(session, user_id)
    before = {"name": user.name, "role": role.code, "status": user.status}
    if data.role is not None and data.role != role.code:
        if user.id == actor.user_id:
            raise Forbidden("you cannot change your own role", code="own_role")
        role = await _role_by_code(session, data.role)
        user.role_id = role.id
    if data.name is not None:
        user.name = data.name
    if data.status is not None:
        if user.id == actor.user_id and data.status != "active":
            raise Forbidden("you cannot disable yourself", code="own_status")
        user.status = data.status
    await session.flush()
    cache.tenant_changed(session, user.tenant_id)  # a new role or status must reach every process
    audit.record(
        session,
        "update",
        "user",
        user.id,
        before=before,
        after={"name": user.name, "role": role.code, "status": user.status},
    )
    return user_out(user, role.code)


async def list_users(
    session: AsyncSession, cursor: str | None, limit: int
) -> tuple[list[UserOut], str | None]:
    stmt = paged_query(select(User, Role.code).join(Role, Role.id == User.role_id), User.id, cursor, limit)
    rows = (await session.execute(stmt)).all()
    items, nxt = split_page(rows, limit, id_of=lambda r: r[0].id)
    return [user_out(u, code) for u, code in items], nxt


# --- API keys -----------------------------------------------------------------------------


def key_out(k: ApiKey) -> ApiKeyOut:
    return ApiKeyOut(
        id=k.id,
        user_id=k.user_id,
        name=k.name,
        prefix=k.prefix,
        created_at=k.created_at,
        expires_at=k.expires_at,
        revoked_at=k.revoked_at,
        last_used_at=k.last_used_at,
    )


async def issue_key(
    session: AsyncSession, tenant_id: UUID, user_id: UUID, name: str, expires_at: datetime | None = None
) -> ApiKeyCreated:
    key_id = new_id()
    secret = new_secret()
    full = format_api_key(tenant_id, key_id, secret)
    key = ApiKey(
        id=key_id,
        user_id=user_id,
        name=name,
        prefix=display_prefix(full),
        secret_hash=hash_secret(secret),
        expires_at=expires_at,
    )
    session.add(key)
    await session.flush()
    audit.record(session, "create", "api_key", key.id, after={"user_id": str(user_id), "name": name})
    return ApiKeyCreated(**msgspec.structs.asdict(key_out(key)), secret=full)


async def create_key(session: AsyncSession, data: ApiKeyIn, actor: Principal) -> ApiKeyCreated:
    assert actor.tenant_id is not None
    user_id = data.user_id or actor.user_id
    assert user_id is not None
    if user_id != actor.user_id and not actor.can("users:write"):
        raise Forbidden("only users:write may create keys for other users", code="missing_permission")
    user, _ = await _user_or_422(session, user_id)
    if data.expires_at is not None and data.expires_at.tzinfo is None:
        raise invalid("expires_at", "must carry a time zone")
    if data.expires_at is not None and data.expires_at <= utcnow():
        raise invalid("expires_at", "must be in the future")
    return await issue_key(session, actor.tenant_id, user.id, data.name, data.expires_at)


async def _user_or_422(session: AsyncSession, user_id: UUID) -> tuple[User, Role]:
    try:
        return await _user(session, user_id)
    except NotFound:
        raise invalid("user_id", "no such user") from None


async def _visible_key(session: AsyncSession, key_id: UUID, actor: Principal) -> ApiKey:
    key = await session.get(ApiKey, (actor.tenant_id, key_id))
    if key is None or (key.user_id != actor.user_id and not actor.can("users:read")):
        raise NotFound("no such API key")
    return key


async def revoke_key(session: AsyncSession, key_id: UUID, actor: Principal) -> ApiKeyOut:
    key = await _visible_key(session, key_id, actor)
    if key.user_id != actor.user_id and not actor.can("users:write"):
        raise Forbidden("only users:write may revoke other users' keys", code="missing_permission")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        await session.flush()
        audit.record(session, "revoke", "api_key", key.id)
    AUTH_CACHE.forget(key.id)
    cache.tenant_changed(session, key.tenant_id)
    return key_out(key)


async def list_keys(
    session: AsyncSession, actor: Principal, cursor: str | None, limit: int, user_id: UUID | None = None
) -> tuple[list[ApiKeyOut], str | None]:
    stmt = select(ApiKey)
    if not actor.can("users:read"):
        stmt = stmt.where(ApiKey.user_id == actor.user_id)
    elif user_id is not None:
        stmt = stmt.where(ApiKey.user_id == user_id)
    rows = (await session.scalars(paged_query(stmt, ApiKey.id, cursor, limit))).all()
    items, nxt = split_page(rows, limit)
    return [key_out(k) for k in items], nxt


# --- authentication -----------------------------------------------------------------------


@dataclass
class _Cached:
    secret_hash: str
    principal: Principal | None
    problem: Exception | None
    expires_at: datetime | None
    until: float


class AuthCache:
    """Verified keys, kept briefly so a request costs no identity query.

    Revoking a key, changing a user or suspending a tenant drops the affected entries here.
    """

    def __init__(self, ttl: float = 30.0) -> None:
        self.ttl = ttl
        self._entries: dict[UUID, _Cached] = {}

    def get(self, key_id: UUID) -> _Cached | None:
        entry = self._entries.get(key_id)
        if entry is None or entry.until < time.monotonic():
            return None
        return entry

    def put(self, key_id: UUID, entry: _Cached) -> None:
        if len(self._entries) > 100_000:
            self._entries.clear()
        self._entries[key_id] = entry

    def forget(self, key_id: UUID) -> None:
        self._entries.pop(key_id, None)

    def forget_tenant(self, tenant_id: UUID) -> None:
        for k, v in list(self._entries.items()):
            if v.principal is None or v.principal.tenant_id == tenant_id:
                self._entries.pop(k, None)

    def clear(self) -> None:
        self._entries.clear()


AUTH_CACHE = AuthCache()
cache.on_tenant_change(AUTH_CACHE.forget_tenant)


async def authenticate(db: Database, parsed: ParsedKey, extra_permissions: dict[str, str]) -> Principal:
    """Turn a parsed tenant API key into a principal, or raise 401/403."""
    assert parsed.tenant_id is not None
    entry = AUTH_CACHE.get(parsed.key_id)
    if entry is None:
        entry = await _load_key(db, parsed)
        AUTH_CACHE.put(parsed.key_id, entry)
    if not secret_matches(parsed.secret, entry.secret_hash):
        raise Unauthorized("invalid API key", code="invalid_credential")
    if entry.problem is not None:
        raise entry.problem
    if entry.expires_at is not None and entry.expires_at <= datetime.now(UTC):
        raise Unauthorized("API key expired", code="credential_expired")
    assert entry.principal is not None
    return entry.principal


async def _load_key(db: Database, parsed: ParsedKey) -> _Cached:
    from omnicloud.operator.models import Tenant

    assert parsed.tenant_id is not None
    until = time.monotonic() + AUTH_CACHE.ttl
    with tenant_scope(parsed.tenant_id):
        async with db.transaction() as session:
            tenant = await session.get(Tenant, parsed.tenant_id)
            row = (
                await session.execute(
                    select(ApiKey, User, Role)
                    .join(User, User.id == ApiKey.user_id)
                    .join(Role, Role.id == User.role_id)
                    .where(ApiKey.id == parsed.key_id)
                )
            ).first()
            if tenant is None or row is None:
                return _Cached(
                    hash_secret(new_secret()),
                    None,
                    Unauthorized("invalid API key", code="invalid_credential"),
                    None,
                    until,
                )
            key, user, role = row
            if secret_matches(parsed.secret, key.secret_hash):
                await session.execute(update(ApiKey).where(ApiKey.id == key.id).values(last_used_at=utcnow()))
    problem: Exception | None = None
    if tenant.status != "active":
        problem = Forbidden(
            f"tenant {tenant.slug} is {tenant.status}"
            + (f": {tenant.status_reason}" if tenant.status_reason else ""),
            code=f"tenant_{tenant.status}",
        )
    elif key.revoked_at is not None:
        problem = Unauthorized("API key revoked", code="credential_revoked")
    elif user.status != "active":
        problem = Forbidden("user is disabled", code="user_disabled")
    principal = Principal(
        kind="user",
        tenant_id=parsed.tenant_id,
        user_id=user.id,
        key_id=key.id,
        roles=(role.code,),
        permissions=frozenset(role.permissions),
        customer_id=user.customer_id,
    )
    return _Cached(key.secret_hash, principal, problem, key.expires_at, until)


def known_permissions(plugin_permissions: dict[str, str]) -> dict[str, str]:
    return {**CORE_PERMISSIONS, **plugin_permissions}


async def user_id_by_email(session: AsyncSession, email: str) -> UUID | None:
    return await session.scalar(select(User.id).where(User.email == email.lower()))


async def rotate_named_keys(session: AsyncSession, tenant_id: UUID, name: str) -> list[tuple[UserOut, str]]:
    """Revoke every live key called ``name`` and issue each active user a fresh one (the demo
    hands these out). Returns each user with its new secret, oldest user first."""
    for key in (
        await session.scalars(select(ApiKey).where(ApiKey.name == name, ApiKey.revoked_at.is_(None)))
    ).all():
        key.revoked_at = utcnow()
        AUTH_CACHE.forget(key.id)
    rows = (
        await session.execute(
            select(User, Role.code)
            .join(Role, Role.id == User.role_id)
            .where(User.status == "active")
            .order_by(User.created_at, User.id)
        )
    ).all()
    issued = []
    for user, code in rows:
        created = await issue_key(session, tenant_id, user.id, name)
        issued.append((user_out(user, code), created.secret))
    return issued
