"""The permission catalogue and the built-in roles.

Domains declare their permissions here; plugins register theirs through the
``register_permissions`` hook. ``*`` grants everything.
"""

from __future__ import annotations

CORE_PERMISSIONS: dict[str, str] = {
    "users:read": "List users, roles and API keys",
    "users:write": "Create and revoke users, roles and API keys",
    "plugins:read": "List plugins and their per-tenant settings",
    "plugins:write": "Enable, disable and configure plugins",
    "audit:read": "Read the audit log",
    "webhooks:read": "List webhook subscriptions and deliveries",
    "webhooks:write": "Manage webhook subscriptions",
    "catalog:read": "Read products, SKUs, categories, brands and units",
    "catalog:write": "Maintain products, SKUs, categories, brands and units",
    "catalog:cost": "See cost prices",
    "regions:read": "Read regions and sales orgs",
    "regions:write": "Maintain regions and sales orgs",
    "customers:read": "Read customers (dealers and terminals)",
    "customers:write": "Maintain customers and the dealer tree",
    "stock:read": "Read warehouses, stock and movements",
    "stock:write": "Receive, issue, adjust and reserve stock",
    "warehouses:write": "Maintain warehouses",
}

_READ_MASTER = ["catalog:read", "regions:read", "customers:read", "stock:read"]

BUILTIN_ROLES: dict[str, tuple[str, list[str]]] = {
    "tenant_admin": ("Tenant administrator", ["*"]),
    "sales_manager": (
        "Sales manager",
        [*_READ_MASTER, "catalog:cost", "customers:write", "regions:write", "audit:read"],
    ),
    "sales_rep": ("Sales representative", [*_READ_MASTER]),
    "finance": ("Finance", [*_READ_MASTER, "catalog:cost", "audit:read"]),
    "warehouse": ("Warehouse", [*_READ_MASTER, "stock:write", "warehouses:write"]),
    "store_clerk": ("Store clerk", ["catalog:read", "stock:read"]),
    "service_agent": ("Service agent", ["catalog:read", "customers:read"]),
    "auditor": (
        "Auditor (read-only)",
        [*_READ_MASTER, "catalog:cost", "users:read", "plugins:read", "audit:read", "webhooks:read"],
    ),
    "dealer": ("Dealer", ["catalog:read", "customers:read", "stock:read", "regions:read"]),
}
