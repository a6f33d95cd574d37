"""Imports every platform model so that ``Base.metadata`` is complete (migrations, tests)."""

from omnicloud.catalog import models as catalog
from omnicloud.channels import models as channels
from omnicloud.core import models as core
from omnicloud.identity import models as identity
from omnicloud.inventory import models as inventory
from omnicloud.operator import models as operator

__all__ = ["catalog", "channels", "core", "identity", "inventory", "operator"]
