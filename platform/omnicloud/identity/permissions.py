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
    "prices:read": "Read price lists, entries, floors and the access sequence",
    "prices:write": "Maintain price lists, entries, floors and the access sequence",
    "promotions:read": "Read promotions, coupon templates and coupon codes",
    "promotions:write": "Maintain promotions and coupon templates, and issue coupon codes",
    "credit:read": "Read credit profiles, temporary lines and credit rules",
    "credit:write": "Maintain credit profiles, temporary lines and credit rules",
    "rebates:read": "Read rebate policies and preview what they pay",
    "rebates:write": "Maintain rebate policies",
    "fees:read": "Read expense offset ratios",
    "fees:write": "Maintain expense offset ratios",
    "quotes:create": "Price a basket (a dealer quotes only for itself)",
    "funds:read": "Read fund, rebate, fee and deposit accounts, their ledgers and statements",
    "funds:write": "Confirm or reject remittances, grant fees and adjust accounts",
    "funds:remit": "File bank remittances (a dealer for itself)",
    "distribution:read": "Read join applications, product authorisations, supply relations and guide prices",
    "distribution:write": "Decide join applications; maintain authorisations, supply and guide prices",
}

_READ_MASTER = ["catalog:read", "regions:read", "customers:read", "stock:read"]
_READ_POLICIES = [
    "prices:read",
    "promotions:read",
    "credit:read",
    "rebates:read",
    "fees:read",
    "funds:read",
    "distribution:read",
]

BUILTIN_ROLES: dict[str, tuple[str, list[str]]] = {
    "tenant_admin": ("Tenant administrator", ["*"]),
    "sales_manager": (
        "Sales manager",
        [
            *_READ_MASTER,
            *_READ_POLICIES,
            "catalog:cost",
            "customers:write",
            "regions:write",
            "audit:read",
            "prices:write",
            "promotions:write",
            "rebates:write",
            "quotes:create",
            "funds:read",
            "distribution:read",
            "distribution:write",
        ],
    ),
    "sales_rep": ("Sales representative", [*_READ_MASTER, "prices:read", "promotions:read", "quotes:create"]),
    "finance": (
        "Finance",
        [
            *_READ_MASTER,
            *_READ_POLICIES,
            "catalog:cost",
            "audit:read",
            "credit:write",
            "rebates:write",
            "fees:write",
            "quotes:create",
            "funds:read",
            "funds:write",
            "funds:remit",
        ],
    ),
    "warehouse": ("Warehouse", [*_READ_MASTER, "stock:write", "warehouses:write"]),
    "store_clerk": ("Store clerk", ["catalog:read", "stock:read", "quotes:create"]),
    "service_agent": ("Service agent", ["catalog:read", "customers:read"]),
    "auditor": (
        "Auditor (read-only)",
        [
            *_READ_MASTER,
            *_READ_POLICIES,
            "catalog:cost",
            "users:read",
            "plugins:read",
            "audit:read",
            "webhooks:read",
        ],
    ),
    "dealer": (
        "Dealer",
        [
            "catalog:read",
            "customers:read",
            "stock:read",
            "regions:read",
            "quotes:create",
            "funds:read",
            "funds:remit",
            "distribution:read",
        ],
    ),
}
