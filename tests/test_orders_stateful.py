"""A hypothesis state machine over the order pool, through the real app: remittances, submits,
approvals, rejections, cancels (partial ones after a shipment included), partial and full
shipments, receipts, returns (filed, then received, rejected, cancelled or left open) and
switches of the posting point in any order keep every invariant across the three pools: the
ledger reconciles and no account goes negative; the cash account holds exactly what the live
orders froze and have not yet deducted, and its balance is what was remitted less what was
deducted plus what was refunded; no order refunds more than it posted, and no line returns or
claims more than shipped; each SKU's reserved stock is exactly what live orders have not
shipped, and its stock on hand is what was received less what shipped plus what came back;
each order's and each return's status is what the state machines say."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)

from omnicloud.core.tenancy import tenant_scope
from omnicloud.pools import order_states
from omnicloud.pools.funds import service as funds
from tests.fixtures import make_tenant
from tests.test_funds_api import fund_cash
from tests.test_funds_stateful import Runner
from tests.test_orders_api import Shop, basket, shop

STOCK = Decimal(20)
LIVE = ("pending_approval", "approved", "partially_shipped")


class OrdersMachine(RuleBasedStateMachine):
    runner: Runner
    orders = Bundle("orders")

    def __init__(self) -> None:
        super().__init__()
        r = self.runner
        self.t = r.run(make_tenant(r.client, prefix="osm"))
        self.shop: Shop = r.run(shop(r.client, self.t, skus=2, stock=str(STOCK)))
        # The second SKU is priced under a floor that needs approval.
        r.run(
            r.client.post(
                "/api/v1/price-floors",
                headers=self.t.auth,
                json={
                    "sku_id": self.shop.skus[1],
                    "unit_id": self.shop.unit_id,
                    "price": "11.00",
                    "action": "needs_approval",
                },
            )
        )
        self.cash_id: str = r.run(fund_cash(r.client, self.t, self.shop.d.ids["D1"], "150.00", "FIRST"))
        self.remitted = Decimal(150)
        self.status: dict[str, str] = {}
        self.return_status: dict[str, str] = {}
        self.dealer = self.shop.d.keys["D1"]

    def _call(self, auth: dict[str, str], path: str, body: Any = None) -> Any:
        headers = {**auth, "Idempotency-Key": str(uuid4())}
        return self.runner.run(self.runner.client.post(f"/api/v1{path}", headers=headers, json=body))

    def _get(self, path: str, **params: Any) -> Any:
        r = self.runner.run(self.runner.client.get(f"/api/v1{path}", headers=self.t.auth, params=params))
        assert r.status_code == 200, r.text
        return r.json()

    def _expect(self, order_id: str, action: order_states.Action, response: Any, ok: int) -> None:
        try:
            after = order_states.transition(self.status[order_id], action)  # type: ignore[arg-type]
        except order_states.IllegalTransition:
            assert response.status_code == 409 and response.json()["code"] == "illegal_transition", (
                response.text
            )
            return
        assert response.status_code == ok, response.text
        assert response.json()["status"] == after
        self.status[order_id] = after

    @rule(amount=st.integers(min_value=1, max_value=300))
    def remit(self, amount: int) -> None:
        self.cash_id = self.runner.run(
            fund_cash(self.runner.client, self.t, self.shop.d.ids["D1"], f"{amount}.00", uuid4().hex[:12])
        )
        self.remitted += amount

    @rule(
        target=orders,
        quantity=st.integers(min_value=2, max_value=6),
        needs_approval=st.booleans(),
    )
    def submit(self, quantity: int, needs_approval: bool) -> Any:
        """One line of the plain SKU, plus one of the SKU under its floor when ``needs_approval``."""
        body = basket(self.shop, str(quantity), "1")
        if not needs_approval:
            body["lines"] = body["lines"][:1]
        r = self._call(self.dealer, "/orders", body)
        if r.status_code != 201:
            assert r.status_code == 409 and r.json()["code"] in (
                "insufficient_funds",
                "insufficient_stock",
            ), r.text
            return multiple()
        o = r.json()
        self.status[o["id"]] = o["status"]
        assert o["status"] == ("pending_approval" if needs_approval else "approved")
        return o["id"]

    @rule(order_id=orders, approve=st.booleans())
    def decide(self, order_id: str, approve: bool) -> None:
        action = "approve" if approve else "reject"
        self._expect(
            order_id,
            action,
            self._call(self.t.auth, f"/orders/{order_id}/{action}", {} if not approve else None),
            200,
        )

    @rule(order_id=orders)
    def cancel(self, order_id: str) -> None:
        self._expect(order_id, "cancel", self._call(self.dealer, f"/orders/{order_id}/cancel", {}), 200)

    @rule(order_id=orders, share=st.sampled_from(["1", "all"]))
    def ship(self, order_id: str, share: str) -> None:
        o = self._get(f"/orders/{order_id}")
        left = [
            (ln["line_id"], Decimal(ln["quantity"]) - Decimal(ln["shipped_quantity"])) for ln in o["lines"]
        ]
        left = [(line_id, q) for line_id, q in left if q > 0]
        lines = [{"line_id": line_id, "quantity": str(q if share == "all" else 1)} for line_id, q in left]
        if not lines:
            lines = [{"line_id": o["lines"][0]["line_id"], "quantity": "1"}]
        r = self._call(self.t.auth, f"/orders/{order_id}/shipments", {"lines": lines})
        full = share == "all" or all(q == 1 for _, q in left)
        if o["status"] in ("approved", "partially_shipped"):
            assert r.status_code == 201, r.text
            self.status[order_id] = "shipped" if full else "partially_shipped"
            assert r.json()["status"] == self.status[order_id]
        else:
            self._expect(order_id, "ship_partial", r, 201)

    @rule(order_id=orders)
    def ship_one_then_cancel(self, order_id: str) -> None:
        """A partial cancel: ship one unit of an approved order's first line, then cancel the rest."""
        if self.status[order_id] == "approved":
            self.ship(order_id, "1")
        self.cancel(order_id)

    @rule(order_id=orders)
    def confirm(self, order_id: str) -> None:
        self._expect(
            order_id, "confirm_receipt", self._call(self.dealer, f"/orders/{order_id}/confirm-receipt"), 200
        )

    @rule(point=st.sampled_from(["shipment", "approval"]))
    def posting_point(self, point: str) -> None:
        current = self._get("/order-settings")
        r = self.runner.run(
            self.runner.client.put(
                "/api/v1/order-settings",
                headers={**self.t.auth, "If-Match": f'"{current["version"]}"'},
                json={"posting_point": point},
            )
        )
        assert r.status_code == 200, r.text

    @rule(
        order_id=orders,
        everything=st.booleans(),
        outcome=st.sampled_from(["receive", "reject", "cancel", "leave"]),
    )
    def return_goods(self, order_id: str, everything: bool, outcome: str) -> None:
        """File a return of one unit (or all that is returnable) of the first returnable line, then
        receive, reject, cancel or leave it open."""
        if self.status[order_id] == "approved":
            self.ship(order_id, "all")
        o = self._get(f"/orders/{order_id}")
        returnable = [
            (
                ln["line_id"],
                Decimal(ln["shipped_quantity"])
                - Decimal(ln["returned_quantity"])
                - Decimal(ln["returning_quantity"]),
            )
            for ln in o["lines"]
        ]
        returnable = [(line_id, q) for line_id, q in returnable if q > 0]
        line_id, q = returnable[0] if returnable else (o["lines"][0]["line_id"], Decimal(1))
        body = {"lines": [{"line_id": line_id, "quantity": str(q if everything else 1)}], "reason": "machine"}
        r = self._call(self.dealer, f"/orders/{order_id}/returns", body)
        if o["status"] not in order_states.RETURNABLE:
            assert r.status_code == 409 and r.json()["code"] == "not_returnable", r.text
            return
        if not returnable:
            assert r.status_code == 422 and r.json()["code"] == "bad_return", r.text
            return
        assert r.status_code == 201, r.text
        return_id = r.json()["id"]
        self.return_status[return_id] = "requested"
        steps = {"receive": ["approve", "receive"], "reject": ["reject"], "cancel": ["cancel"], "leave": []}[
            outcome
        ]
        for step in steps:
            auth = self.dealer if step == "cancel" else self.t.auth
            body = {"warehouse_id": self.shop.warehouse_id, "lot_no": "RET"} if step == "receive" else {}
            r = self._call(auth, f"/returns/{return_id}/{step}", body)
            after = order_states.return_transition(self.return_status[return_id], step)  # type: ignore[arg-type]
            assert r.status_code == 200 and r.json()["status"] == after, r.text
            self.return_status[return_id] = after

    @invariant()
    def pools_agree(self) -> None:
        orders = self._get("/orders", limit=1000)["items"]
        assert {o["id"]: o["status"] for o in orders} == self.status
        returns = self._get("/returns", limit=1000)["items"]
        assert {r["id"]: r["status"] for r in returns} == self.return_status
        posted = sum((Decimal(o["totals"]["posted_amount"]) for o in orders), Decimal(0))
        refunded = sum((Decimal(o["totals"]["refunded_amount"]) for o in orders), Decimal(0))
        assert all(
            Decimal(o["totals"]["refunded_amount"]) <= Decimal(o["totals"]["posted_amount"]) for o in orders
        )
        frozen = sum(
            (
                Decimal(o["totals"]["frozen_amount"]) - Decimal(o["totals"]["posted_amount"])
                for o in orders
                if o["status"] in LIVE
            ),
            Decimal(0),
        )
        account = self._get(f"/fund-accounts/{self.cash_id}")
        assert (Decimal(account["balance"]), Decimal(account["held"])) == (
            self.remitted - posted + refunded,
            frozen,
        )
        assert Decimal(account["balance"]) >= Decimal(account["held"]) >= 0
        shipped: dict[str, Decimal] = {s: Decimal(0) for s in self.shop.skus}
        returned: dict[str, Decimal] = {s: Decimal(0) for s in self.shop.skus}
        unshipped: dict[str, Decimal] = {s: Decimal(0) for s in self.shop.skus}
        for summary in orders:
            for ln in self._get(f"/orders/{summary['id']}")["lines"]:
                shipped[ln["sku_id"]] += Decimal(ln["shipped_quantity"])
                returned[ln["sku_id"]] += Decimal(ln["returned_quantity"])
                assert Decimal(ln["returned_quantity"]) + Decimal(ln["returning_quantity"]) <= Decimal(
                    ln["shipped_quantity"]
                )
                if summary["status"] in LIVE:
                    unshipped[ln["sku_id"]] += Decimal(ln["quantity"]) - Decimal(ln["shipped_quantity"])
        for sku in self.shop.skus:
            levels = self._get("/stock", warehouse_id=self.shop.warehouse_id, sku_id=sku)["items"]
            on_hand = sum((Decimal(level["on_hand"]) for level in levels), Decimal(0))
            reserved = sum((Decimal(level["reserved"]) for level in levels), Decimal(0))
            assert (on_hand, reserved) == (STOCK - shipped[sku] + returned[sku], unshipped[sku])
        assert self.runner.run(self._reconcile()) == []

    async def _reconcile(self) -> list[str]:
        with tenant_scope(UUID(self.t.id)):
            async with self.runner.db.transaction() as s:
                return await funds.reconcile(s)


def test_order_pool_state_machine(backend: Any) -> None:
    runner = Runner(backend)
    OrdersMachine.runner = runner
    try:
        run_state_machine_as_test(
            OrdersMachine,
            settings=settings(
                max_examples=10,
                stateful_step_count=40,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=list(HealthCheck),
            ),
        )
    finally:
        runner.close()
