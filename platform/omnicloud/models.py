"""Imports every platform model so that ``Base.metadata`` is complete (migrations, tests)."""

from omnicloud.catalog import models as catalog
from omnicloud.channels import models as channels
from omnicloud.core import models as core
from omnicloud.distribution import models as distribution
from omnicloud.identity import models as identity
from omnicloud.inventory import models as inventory
from omnicloud.operator import models as operator
from omnicloud.policies.approvals import models as approvals
from omnicloud.policies.prices import models as prices
from omnicloud.policies.promos import models as promos
from omnicloud.policies.terms import models as terms
from omnicloud.pools.funds import models as funds
from omnicloud.pools.invoices import models as invoices
from omnicloud.pools.orders import models as orders
from omnicloud.pools.rebates import models as rebate_accruals
from omnicloud.pools.sales import models as sales

__all__ = [
    "approvals",
    "catalog",
    "channels",
    "core",
    "distribution",
    "funds",
    "identity",
    "inventory",
    "invoices",
    "operator",
    "orders",
    "prices",
    "promos",
    "rebate_accruals",
    "sales",
    "terms",
]
