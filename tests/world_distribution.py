"""The distribution part of the isolation world (see tests/world.py)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.fixtures import TenantHandle, bearer
from tests.world import World


async def _post(
    client: httpx.AsyncClient, headers: dict[str, str], path: str, body: dict[str, object]
) -> str:
    r = await client.post(path, headers=headers, json=body)
    assert r.status_code == 201, (path, r.status_code, r.text)
    return str(r.json()["id"])


async def build(client: httpx.AsyncClient, t: TenantHandle, w: World) -> None:
    """Create one of every distribution object in ``w.tenant`` and record its id in ``w.ids``;
    dealer d2's own objects go to ``w.other_dealer_ids``."""
    ids, d2 = w.ids, w.other_dealer_ids["customer_id"]
    application = {"company_name": "Newco", "contact_name": "Ann", "phone": "+86 21 5555 0101"}
    ids["join_application_id"] = await _post(
        client, bearer(w.dealer_keys["d1"]), "/api/v1/join-applications", application
    )
    w.other_dealer_ids["join_application_id"] = await _post(
        client, bearer(w.dealer_keys["d2"]), "/api/v1/join-applications", application
    )
    for customer_id, into in ((ids["customer_id"], ids), (d2, w.other_dealer_ids)):
        into["product_authorization_id"] = await _post(
            client,
            t.auth,
            "/api/v1/product-authorizations",
            {"effect": "grant", "customer_id": customer_id, "sku_ids": [ids["sku_id"]]},
        )
        into["supply_relation_id"] = await _post(
            client, t.auth, "/api/v1/supply-relations", {"buyer_id": customer_id, "seller_id": None}
        )
    ids["guide_price_id"] = await _post(
        client,
        t.auth,
        "/api/v1/guide-prices",
        {"sku_id": ids["sku_id"], "unit_id": ids["unit_id"], "min_price": "80.00", "max_price": "120.00"},
    )
    # Another tenant replays these on this tenant's objects: the bodies must be valid for it.
    w.bodies["approveJoinApplication"] = {"code": "JOINED"}
    w.bodies["rejectJoinApplication"] = {"reason": "not now"}
    w.bodies["replaceGuidePrice"] = {"min_price": "1.00", "max_price": "2.00"}


class Brand:
    """A tenant with a small catalogue, regions and dealers built through the API, for the
    distribution tests: units pcs and case (6 pcs); categories DRINKS > BEER > LAGER and FOOD;
    brands ACME and ZEN; regions CN > EAST > SH and CN > NORTH."""

    def __init__(self, client: httpx.AsyncClient, tenant: TenantHandle) -> None:
        self.c = client
        self.t = tenant
        self.ids: dict[str, str] = {}

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        status: int = 200,
        key: str | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        auth = bearer(key) if key else self.t.auth
        r = await self.c.request(method, path, json=body, headers={**auth, **(headers or {})}, params=params)
        assert r.status_code == status, (method, path, r.status_code, r.text)
        return r.json() if r.content else None

    async def post(self, path: str, body: Any, *, status: int = 201, **kw: Any) -> Any:
        return await self.call("POST", path, body, status=status, **kw)

    async def get(self, path: str, *, status: int = 200, **kw: Any) -> Any:
        return await self.call("GET", path, status=status, **kw)

    async def basics(self) -> Brand:
        ids = self.ids
        for code in ("pcs", "case"):
            ids[code] = (await self.post("/api/v1/units", {"code": code, "name": code}))["id"]
        for code, parent in (("DRINKS", None), ("BEER", "DRINKS"), ("LAGER", "BEER"), ("FOOD", None)):
            body = {"code": code, "name": code, "parent_id": ids.get(parent or "")}
            ids[code] = (await self.post("/api/v1/categories", body))["id"]
        for code in ("ACME", "ZEN"):
            ids[code] = (await self.post("/api/v1/brands", {"code": code, "name": code}))["id"]
        for code, parent in (("CN", None), ("EAST", "CN"), ("SH", "EAST"), ("NORTH", "CN")):
            body = {"code": code, "name": code, "parent_id": ids.get(parent or "")}
            ids[code] = (await self.post("/api/v1/regions", body))["id"]
        return self

    async def sku(self, code: str, *, category: str | None = None, brand: str | None = None) -> str:
        product = await self.post(
            "/api/v1/products",
            {
                "code": code,
                "name": code,
                "base_unit_id": self.ids["pcs"],
                "category_id": self.ids[category] if category else None,
                "brand_id": self.ids[brand] if brand else None,
                "conversions": [{"unit_id": self.ids["case"], "factor": "6"}],
            },
        )
        sku = await self.post("/api/v1/skus", {"product_id": product["id"], "code": code, "name": code})
        self.ids[code] = sku["id"]
        return str(sku["id"])

    async def customer(self, code: str, *, parent: str | None = None, **extra: Any) -> str:
        body = {
            "code": code,
            "name": code,
            "kind": "dealer",
            "parent_id": self.ids.get(parent or ""),
            **extra,
        }
        self.ids[code] = (await self.post("/api/v1/customers", body))["id"]
        return self.ids[code]

    async def user_key(self, code: str, role: str, customer_id: str | None = None) -> str:
        user = await self.post(
            "/api/v1/users",
            {
                "email": f"{code.lower()}@{self.t.slug}.example",
                "name": code,
                "role": role,
                "customer_id": customer_id,
            },
        )
        return str((await self.post("/api/v1/api-keys", {"name": code, "user_id": user["id"]}))["secret"])
