"""A hypothesis state machine over the fund pool: receipts, fee grants, freezes, posts, releases
and refunds in any order keep every invariant: each transfer sums to zero, each balance is the sum
of its entries and each ``held`` the sum of its placed holds, no account goes below zero or below
what it holds, every pool (the brand's, and the customer's level-1 dealer's, DOMAIN §7) sums to
zero on its own, and the balances follow a simple model of what each operation must do.

Hypothesis drives rules synchronously, so the machine runs the app on an event loop of its own
(with connections of its own) and waits for each step.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from decimal import ROUND_DOWN, Decimal
from typing import Any, TypeVar
from uuid import UUID, uuid4

import httpx
import msgspec
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

from omnicloud.app import create_app
from omnicloud.core.cache import BUS
from omnicloud.core.db import Database
from omnicloud.core.errors import Conflict
from omnicloud.core.security import Principal
from omnicloud.core.tenancy import tenant_scope
from omnicloud.pools.funds import service as funds
from omnicloud.pools.funds.schemas import Reference
from tests.fixtures import TenantHandle, make_tenant
from tests.test_funds_holds import order

T = TypeVar("T")
CENT = Decimal("0.01")
Z = Decimal("0.00")


class Runner:
    """The app, a tenant and a client on a private event loop."""

    def __init__(self, backend: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.db = Database(backend.settings.database_url, pool_size=2)
        # In-process stores, like the contract test's app: a Redis client belongs to one loop.
        cfg = msgspec.structs.replace(backend.settings, redis_url=None)
        bus = (BUS.redis, BUS.channel)
        self.app = create_app(cfg, plugins=backend.plugins, db=self.db)
        BUS.redis, BUS.channel = bus  # the session's app keeps its invalidation bus
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://testserver"
        )
        self.tenant: TenantHandle = self.run(make_tenant(self.client, prefix="fsm"))

    def run(self, coro: Awaitable[T]) -> T:
        return self.loop.run_until_complete(coro)

    def session(self, work: Callable[[Any], Awaitable[T]]) -> T:
        async def go() -> T:
            with tenant_scope(UUID(self.tenant.id)):
                async with self.db.transaction() as s:
                    return await work(s)

        return self.run(go())

    def post(self, path: str, body: Any = None, key: str | None = None) -> Any:
        headers = {**self.tenant.auth, **({"Idempotency-Key": key} if key else {})}
        r = self.run(self.client.post(f"/api/v1{path}", headers=headers, json=body))
        assert r.status_code in (200, 201), (path, r.status_code, r.text)
        return r.json()

    def close(self) -> None:
        self.run(self.client.aclose())
        self.run(self.db.dispose())
        self.loop.close()


class FundsMachine(RuleBasedStateMachine):
    runner: Runner
    orders = Bundle("orders")

    def __init__(self) -> None:
        super().__init__()
        code = f"C{uuid4().hex[:10]}"
        self.seller = UUID(
            self.runner.post("/customers", {"code": f"S{code}", "name": code, "kind": "dealer"})["id"]
        )
        self.customer_id = UUID(
            self.runner.post(
                "/customers", {"code": code, "name": code, "kind": "dealer", "parent_id": str(self.seller)}
            )["id"]
        )
        self.accounts: dict[UUID, list[Decimal]] = {}  # account → [balance, held], as the model says
        self.cash: dict[UUID | None, UUID] = {}  # pool owner (None: the brand) → the cash account
        self.owner: dict[UUID, UUID | None] = {}  # order → the pool it is paid in
        self.fees: list[UUID] = []
        self.placed: dict[UUID, Decimal] = {}  # order → frozen
        self.paid: dict[UUID, Decimal] = {}  # order → posted and not refunded

    def _available(self, accounts: list[UUID]) -> Decimal:
        return sum((self.accounts[a][0] - self.accounts[a][1] for a in accounts), Z)

    @rule(amount=st.integers(min_value=50, max_value=1000), at_seller=st.booleans())
    def receipt(self, amount: int, at_seller: bool) -> None:
        ref = uuid4().hex
        owner = self.seller if at_seller else None
        r = self.runner.post(
            "/remittances",
            {
                "customer_id": str(self.customer_id),
                "amount": str(amount),
                "bank_reference": ref,
                "remitted_on": funds.business_day().isoformat(),
                "seller_customer_id": None if owner is None else str(owner),
            },
            key=ref,
        )
        confirmed = self.runner.post(f"/remittances/{r['id']}/confirm", key=f"confirm-{ref}")
        again = self.runner.post(f"/remittances/{r['id']}/confirm", key=f"confirm-{ref}")  # a retry
        assert again == confirmed
        self.cash[owner] = UUID(confirmed["fund_account_id"])
        self.accounts.setdefault(self.cash[owner], [Z, Z])[0] += amount

    @rule(amount=st.integers(min_value=1, max_value=200), days=st.integers(min_value=0, max_value=60))
    def grant(self, amount: int, days: int) -> None:
        body = {
            "customer_id": str(self.customer_id),
            "amount": str(amount),
            "fee_type": "promo",
            "source": "machine",
            "expires_on": (funds.business_day() + timedelta(days=days)).isoformat(),
        }
        key = uuid4().hex
        out = self.runner.post("/fee-grants", body, key=key)
        assert self.runner.post("/fee-grants", body, key=key) == out  # a retry grants nothing more
        account_id = UUID(out["fund_account"]["id"])
        self.fees.append(account_id)
        self.accounts[account_id] = [Decimal(amount).quantize(CENT), Z]

    @rule(
        target=orders,
        amount=st.integers(min_value=1, max_value=400),
        ratio=st.sampled_from(["0", "0.1", "0.5"]),
        at_seller=st.booleans(),
    )
    def freeze(self, amount: int, ratio: str, at_seller: bool) -> Any:
        owner = self.seller if at_seller else None
        cap = (Decimal(amount) * Decimal(ratio)).quantize(CENT, rounding=ROUND_DOWN)
        fee_take = Z if at_seller else min(cap, self._available(self.fees))  # fees are the brand's
        cash = self._available([self.cash[owner]]) if owner in self.cash else Z
        fits = amount - fee_take <= cash
        ref = Reference(type="order", id=uuid4())

        async def work(s: Any) -> Any:
            plan = await funds.plan_payment(
                s,
                customer_id=self.customer_id,
                sales_org_id=None,
                request=order((str(amount), str(cap))),
                owner=owner,
            )
            return await funds.freeze(
                s, customer_id=self.customer_id, sales_org_id=None, plan=plan, reference=ref, owner=owner
            )

        try:
            holds = self.runner.session(work)
        except Conflict as exc:
            assert not fits and exc.code == "insufficient_funds", exc
            return multiple()
        assert fits and sum((h.amount for h in holds), Z) == amount
        assert sum((h.amount for h in holds if h.step == "fee"), Z) == fee_take
        for h in holds:
            self.accounts[h.fund_account_id][1] += h.amount
        self.placed[ref.id] = Decimal(amount).quantize(CENT)
        self.owner[ref.id] = owner
        return ref

    @rule(ref=orders, part=st.one_of(st.none(), st.integers(min_value=1, max_value=60)))
    def post(self, ref: Reference, part: int | None) -> None:
        frozen = self.placed.get(ref.id, Z)
        want = frozen if part is None else Decimal(part)
        try:
            out = self.runner.session(
                lambda s: funds.post_holds(
                    s, ref, None if part is None else Decimal(part), owner=self.owner.get(ref.id)
                )
            )
        except Conflict as exc:
            assert exc.code == "exceeds_holds" and want > frozen, exc
            return
        if out is None:
            assert frozen == 0 and part is None
            return
        assert sum((leg.amount for leg in out.legs if leg.amount < 0), Z) == -want
        for leg in out.legs:
            if leg.fund_account_id in self.accounts:
                self.accounts[leg.fund_account_id][0] += leg.amount
                self.accounts[leg.fund_account_id][1] += leg.amount
        self.placed[ref.id] = frozen - want
        self.paid[ref.id] = self.paid.get(ref.id, Z) + want

    @rule(ref=orders, part=st.one_of(st.none(), st.integers(min_value=1, max_value=60)))
    def release(self, ref: Reference, part: int | None) -> None:
        frozen = self.placed.get(ref.id, Z)
        want = frozen if part is None else Decimal(part)
        try:
            holds = self.runner.session(
                lambda s: funds.release_holds(s, ref, None if part is None else Decimal(part))
            )
        except Conflict as exc:
            assert exc.code == "exceeds_holds" and want > frozen, exc
            return
        closed = sum((h.amount for h in holds if h.state == "voided"), Z)
        kept = sum((h.amount for h in holds if h.state == "placed"), Z)
        assert closed - kept == want
        for h in holds:
            self.accounts[h.fund_account_id][1] += -h.amount if h.state == "voided" else h.amount
        self.placed[ref.id] = frozen - want

    @rule(ref=orders, part=st.one_of(st.none(), st.integers(min_value=1, max_value=60)), retry=st.booleans())
    def refund(self, ref: Reference, part: int | None, retry: bool) -> None:
        paid = self.paid.get(ref.id, Z)
        want = paid if part is None else Decimal(part)
        key = uuid4().hex

        def go(s: Any) -> Any:
            return funds.refund(
                s, ref, None if part is None else Decimal(part), key=key, owner=self.owner.get(ref.id)
            )

        try:
            out = self.runner.session(go)
        except Conflict as exc:
            assert exc.code == "exceeds_refundable" and want > paid, exc
            return
        if out is None:
            assert paid == 0 and part is None
            return
        if retry:
            assert self.runner.session(go) == out  # the same key moves nothing again
        assert sum((leg.amount for leg in out.legs if leg.amount > 0), Z) == want
        for leg in out.legs:
            if leg.fund_account_id in self.accounts:
                self.accounts[leg.fund_account_id][0] += leg.amount
        self.paid[ref.id] = paid - want

    @invariant()
    def ledger_adds_up(self) -> None:
        async def check(s: Any) -> tuple[list[str], dict[UUID, tuple[Decimal, Decimal]]]:
            got = [await funds.get_account(s, STAFF, a) for a in self.accounts]
            return await funds.reconcile(s), {a.id: (a.balance, a.held) for a in got}

        problems, stored = self.runner.session(check)
        assert problems == []
        assert stored == {a: (balance, held) for a, (balance, held) in self.accounts.items()}
        assert all(Z <= held <= balance for balance, held in stored.values())


STAFF = Principal(kind="user", permissions=frozenset({"*"}))


def test_fund_pool_state_machine(backend: Any) -> None:
    runner = Runner(backend)
    FundsMachine.runner = runner
    try:
        run_state_machine_as_test(
            FundsMachine,
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
