"""The fund pool over REST: accounts with their ledger entries and holds, statements (对账单),
remittances (汇款), fee grants (费用发放) and adjustments (调账).

POSTs that create a money document need an ``Idempotency-Key`` (428 without one): a retry then
replays the first answer and never moves money twice.

A level-2 dealer keeps accounts at its level-1 supplier too (that dealer's pool, DOMAIN §7): it
files remittances naming ``seller_customer_id`` and that dealer's users (``funds:own``) confirm
or reject them; the dealer grants credit to the dealers below it under ``/credit-grants``
(``credit:own``), which its sales orders to them are checked against.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.datastructures import State
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from omnicloud.catalog.api import with_etag
from omnicloud.core.deps import Caller, Cursor, Limit, Session, page_limit
from omnicloud.core.errors import Forbidden, PreconditionRequired, Unauthorized
from omnicloud.core.http import IDEMPOTENCY_HEADER, idempotent, if_match, requires
from omnicloud.core.security import Principal, current_principal
from omnicloud.policies.terms import service as terms
from omnicloud.policies.terms.schemas import (
    CreditProfileIn,
    CreditProfileOut,
    CreditProfilePage,
    CreditProfilePatch,
    TemporaryLineIn,
    TemporaryLineOut,
)
from omnicloud.pools.funds import service
from omnicloud.pools.funds.models import ACCOUNT_KINDS, HOLD_STATES, REMITTANCE_STATES
from omnicloud.pools.funds.schemas import (
    AdjustmentIn,
    EntryPage,
    FeeGrantIn,
    FeeGrantOut,
    FundAccountOut,
    FundAccountPage,
    HoldPage,
    RemittanceIn,
    RemittanceOut,
    RemittancePage,
    RemittanceRejectIn,
    SpecialAccountIn,
    StatementOut,
    TransferOut,
)


def staff_or_dealer(staff: str, own: str) -> Any:
    """A guard: the brand's ``staff`` permission, or ``own`` for a dealer user (who then acts only
    on its own pool, orders or grants: the service checks which)."""

    async def guard(connection: Any, _: Any) -> None:
        p = current_principal()
        if p is None:
            raise Unauthorized("authentication required", code="missing_credential")
        if not (p.can(staff) or (p.is_dealer and p.can(own))):
            raise Forbidden(f"missing permission: {staff}", code="missing_permission")

    guard.__name__ = f"requires_{staff}_or_{own}".replace(":", "_")
    return guard


READ = [requires("funds:read")]
WRITE = [requires("funds:write")]
DECIDE = [staff_or_dealer("funds:write", "funds:own")]
KEYED = "Needs an Idempotency-Key (428 without one); a retry with the same key replays the answer."

AccountKind = Annotated[
    str | None,
    QueryParameter(name="kind", pattern=f"^({'|'.join(ACCOUNT_KINDS)})$", description="Account kind"),
]
RemittanceStatus = Annotated[
    str | None,
    QueryParameter(
        name="status", pattern=f"^({'|'.join(REMITTANCE_STATES)})$", description="Remittance status"
    ),
]
HoldState = Annotated[
    str | None, QueryParameter(name="state", pattern=f"^({'|'.join(HOLD_STATES)})$", description="Hold state")
]
DateFrom = Annotated[
    date | None,
    QueryParameter(name="from", description="First day of the period (UTC); default: the 1st of to's month"),
]
DateTo = Annotated[
    date | None,
    QueryParameter(name="to", description="Last day of the period (UTC), included; default: today"),
]


def require_key(request: Request[Any, Any, Any]) -> None:
    """Money documents are created only with an Idempotency-Key, so a retry can be recognised."""
    if request.headers.get(IDEMPOTENCY_HEADER) is None:
        raise PreconditionRequired(
            "send an Idempotency-Key: this request creates a money document", code="idempotency_key_required"
        )


class FundAccountController(Controller):
    path = "/api/v1/fund-accounts"
    tags = ["funds"]

    @get(
        "/",
        operation_id="listFundAccounts",
        summary="List fund accounts (cash, rebate, fee, special, deposit; system accounts for staff)",
        description="Dealers see the accounts of their own customer subtree only. "
        "`owner_customer_id` keeps the accounts kept at that dealer (its pool); `brand_pool=true` the "
        "brand's pool only, `false` dealers' pools only.",
        guards=READ,
    )
    async def list_accounts(
        self,
        session: Session,
        principal: Caller,
        state: State,
        customer_id: FromQuery[UUID | None] = None,
        kind: AccountKind = None,
        owner_customer_id: FromQuery[UUID | None] = None,
        brand_pool: FromQuery[bool | None] = None,
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> FundAccountPage:
        items, nxt = await service.list_accounts(
            session,
            principal,
            cursor,
            page_limit(state, limit),
            customer_id=customer_id,
            kind=kind,
            owner_customer_id=owner_customer_id,
            brand_pool=brand_pool,
        )
        return FundAccountPage(items=items, next_cursor=nxt)

    @post(
        "/",
        operation_id="openSpecialFundAccount",
        summary="Open a special-funds account (专项资金) restricted to a product scope",
        description="It starts empty; fund it with a fund adjustment.",
        guards=WRITE,
    )
    async def open_special(
        self, request: Request[Any, Any, Any], data: JSONBody[SpecialAccountIn], session: Session
    ) -> Response[FundAccountOut]:
        return await idempotent(request, session, lambda: service.open_special_account(session, data))

    @get(
        "/{fund_account_id:uuid}",
        operation_id="getFundAccount",
        summary="Show a fund account: balance, held (frozen) and available",
        guards=READ,
    )
    async def get_account(
        self, fund_account_id: FromPath[UUID], session: Session, principal: Caller
    ) -> FundAccountOut:
        return await service.get_account(session, principal, fund_account_id)

    @get(
        "/{fund_account_id:uuid}/entries",
        operation_id="listFundAccountEntries",
        summary="The account's ledger entries, oldest first",
        guards=READ,
    )
    async def list_entries(
        self,
        fund_account_id: FromPath[UUID],
        session: Session,
        principal: Caller,
        state: State,
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> EntryPage:
        items, nxt = await service.list_entries(
            session, principal, fund_account_id, cursor, page_limit(state, limit)
        )
        return EntryPage(items=items, next_cursor=nxt)

    @get(
        "/{fund_account_id:uuid}/holds",
        operation_id="listFundAccountHolds",
        summary="The account's holds (freezes): placed, posted or voided",
        guards=READ,
    )
    async def list_holds(
        self,
        fund_account_id: FromPath[UUID],
        session: Session,
        principal: Caller,
        state: State,
        hold_state: HoldState = None,
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> HoldPage:
        items, nxt = await service.list_holds(
            session, principal, fund_account_id, cursor, page_limit(state, limit), state=hold_state
        )
        return HoldPage(items=items, next_cursor=nxt)


class StatementController(Controller):
    path = "/api/v1/customers"
    tags = ["funds"]

    @get(
        "/{customer_id:uuid}/statement",
        operation_id="getCustomerStatement",
        summary="A statement (对账单): per account opening balance, movements and closing balance",
        description="From the start of `from` to the end of `to` (UTC days), computed from the ledger; "
        "without them, this month so far.",
        guards=READ,
    )
    async def get_statement(
        self,
        customer_id: FromPath[UUID],
        session: Session,
        principal: Caller,
        date_from: DateFrom = None,
        date_to: DateTo = None,
    ) -> StatementOut:
        end = date_to or service.business_day()
        start = date_from or end.replace(day=1)
        return await service.statement(session, principal, customer_id, start, end)


class RemittanceController(Controller):
    path = "/api/v1/remittances"
    tags = ["funds"]

    @get("/", operation_id="listRemittances", summary="List remittances", guards=READ)
    async def list_remittances(
        self,
        session: Session,
        principal: Caller,
        state: State,
        customer_id: FromQuery[UUID | None] = None,
        status: RemittanceStatus = None,
        seller_customer_id: FromQuery[UUID | None] = None,
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> RemittancePage:
        items, nxt = await service.list_remittances(
            session,
            principal,
            cursor,
            page_limit(state, limit),
            customer_id=customer_id,
            status=status,
            seller_customer_id=seller_customer_id,
        )
        return RemittancePage(items=items, next_cursor=nxt)

    @post(
        "/",
        operation_id="createRemittance",
        summary="File a bank remittance (pending until finance confirms it)",
        description="A dealer files for itself; staff need funds:write and name the customer. "
        "`seller_customer_id` pays a dealer supplier above the customer (its pool) instead of the "
        "brand. " + KEYED,
        guards=[requires("funds:remit")],
    )
    async def create_remittance(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[RemittanceIn],
        session: Session,
        principal: Caller,
    ) -> Response[RemittanceOut]:
        require_key(request)
        return await idempotent(request, session, lambda: service.create_remittance(session, principal, data))

    @get("/{remittance_id:uuid}", operation_id="getRemittance", summary="Show a remittance", guards=READ)
    async def get_remittance(
        self, remittance_id: FromPath[UUID], session: Session, principal: Caller
    ) -> RemittanceOut:
        return await service.get_remittance(session, principal, remittance_id)

    @post(
        "/{remittance_id:uuid}/confirm",
        operation_id="confirmRemittance",
        summary="Confirm the receipt: credit cash (or deposit) exactly once",
        description="Only a pending remittance can be confirmed; otherwise 409. The brand's finance "
        "decides any; a dealer (funds:own) only those paid into its own pool (403 for others it sees).",
        guards=DECIDE,
        status_code=200,
    )
    async def confirm(
        self,
        request: Request[Any, Any, Any],
        remittance_id: FromPath[UUID],
        session: Session,
        principal: Caller,
    ) -> Response[RemittanceOut]:
        return await idempotent(
            request,
            session,
            lambda: service.confirm_remittance(session, principal, remittance_id),
            status_code=200,
        )

    @post(
        "/{remittance_id:uuid}/reject",
        operation_id="rejectRemittance",
        summary="Reject the receipt; no balance changes",
        description="Only a pending remittance can be rejected; otherwise 409. The brand's finance "
        "decides any; a dealer (funds:own) only those paid into its own pool (403 for others it sees).",
        guards=DECIDE,
        status_code=200,
    )
    async def reject(
        self,
        request: Request[Any, Any, Any],
        remittance_id: FromPath[UUID],
        data: JSONBody[RemittanceRejectIn],
        session: Session,
        principal: Caller,
    ) -> Response[RemittanceOut]:
        return await idempotent(
            request,
            session,
            lambda: service.reject_remittance(session, principal, remittance_id, data.reason),
            status_code=200,
        )


class FeeGrantController(Controller):
    path = "/api/v1/fee-grants"
    tags = ["funds"]

    @post(
        "/",
        operation_id="grantFees",
        summary="Grant an expense balance (费用) with a type, source and validity",
        description="Opens a fee account of its own, credited from fee expense. " + KEYED,
        guards=WRITE,
    )
    async def grant(
        self, request: Request[Any, Any, Any], data: JSONBody[FeeGrantIn], session: Session
    ) -> Response[FeeGrantOut]:
        require_key(request)
        return await idempotent(request, session, lambda: service.grant_fee(session, data))


class AdjustmentController(Controller):
    path = "/api/v1/fund-adjustments"
    tags = ["funds"]

    @post(
        "/",
        operation_id="adjustFunds",
        summary="A correcting transfer (调账) with a reason; ledger entries are never edited",
        description="A debit below what the account holds is a 409. " + KEYED,
        guards=WRITE,
    )
    async def adjust(
        self, request: Request[Any, Any, Any], data: JSONBody[AdjustmentIn], session: Session
    ) -> Response[TransferOut]:
        require_key(request)
        return await idempotent(request, session, lambda: service.adjust(session, data))


def _grantor(principal: Principal) -> UUID | None:
    """Whose credit grants the caller works on: a dealer user its dealer's, the brand's staff the
    brand's."""
    return principal.customer_id if principal.is_dealer else None


def _version(request: Request[Any, Any, Any]) -> int:
    version = if_match(request)
    assert version is not None
    return version


GRANT_READ = [staff_or_dealer("credit:read", "credit:own")]
GRANT_WRITE = [staff_or_dealer("credit:write", "credit:own")]


class CreditGrantController(Controller):
    """Credit a dealer grants to the dealers below it (DOMAIN §7: level-1's credit): its sales
    orders to them are checked against these lines. A dealer user reaches its own dealer's grants
    only (404 for any other); for the brand's staff these are the brand's own profiles, as under
    ``/credit-profiles``."""

    path = "/api/v1/credit-grants"
    tags = ["credit"]

    @get(
        "/",
        operation_id="listCreditGrants",
        summary="List the credit lines the caller's dealer grants, with their temporary lines",
        guards=GRANT_READ,
    )
    async def list_grants(
        self,
        session: Session,
        principal: Caller,
        state: State,
        customer_id: FromQuery[UUID | None] = None,
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> CreditProfilePage:
        items, nxt = await terms.list_credit_profiles(
            session, cursor, page_limit(state, limit), customer_id=customer_id, owner=_grantor(principal)
        )
        return CreditProfilePage(items=items, next_cursor=nxt)

    @post(
        "/",
        operation_id="createCreditGrant",
        summary="Grant a dealer below the caller's dealer a credit line",
        description="One grant per dealer and grantor: a second one is a 409. A dealer grants only "
        "to dealers below it in the tree and never per sales org (422).",
        guards=GRANT_WRITE,
    )
    async def create_grant(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[CreditProfileIn],
        session: Session,
        principal: Caller,
    ) -> Response[CreditProfileOut]:
        owner = _grantor(principal)
        return await idempotent(request, session, lambda: terms.create_credit_profile(session, data, owner))

    @get(
        "/{credit_grant_id:uuid}",
        operation_id="getCreditGrant",
        summary="Show one of the caller's dealer's credit grants and the line valid today",
        guards=GRANT_READ,
    )
    async def get_grant(
        self, credit_grant_id: FromPath[UUID], session: Session, principal: Caller
    ) -> Response[CreditProfileOut]:
        return with_etag(await terms.get_credit_profile(session, credit_grant_id, _grantor(principal)))

    @patch(
        "/{credit_grant_id:uuid}",
        operation_id="updateCreditGrant",
        summary="Change a grant's limit, credit days or grace days (If-Match: the version you read)",
        description="Without If-Match: 428. With a stale version: 412.",
        guards=GRANT_WRITE,
    )
    async def update_grant(
        self,
        credit_grant_id: FromPath[UUID],
        data: JSONBody[CreditProfilePatch],
        request: Request[Any, Any, Any],
        session: Session,
        principal: Caller,
    ) -> Response[CreditProfileOut]:
        version = _version(request)
        return with_etag(
            await terms.update_credit_profile(session, credit_grant_id, data, version, _grantor(principal))
        )

    @post(
        "/{credit_grant_id:uuid}/temporary-lines",
        operation_id="createCreditGrantTemporaryLine",
        summary="Add a temporary line to a grant, valid up to and including expires_on",
        guards=GRANT_WRITE,
    )
    async def add_line(
        self,
        credit_grant_id: FromPath[UUID],
        request: Request[Any, Any, Any],
        data: JSONBody[TemporaryLineIn],
        session: Session,
        principal: Caller,
    ) -> Response[TemporaryLineOut]:
        owner = _grantor(principal)
        return await idempotent(
            request, session, lambda: terms.add_temporary_line(session, credit_grant_id, data, owner)
        )

    @delete(
        "/{credit_grant_id:uuid}/temporary-lines/{credit_line_id:uuid}",
        operation_id="deleteCreditGrantTemporaryLine",
        summary="Withdraw a temporary line of a grant; answers the grant as it is now",
        guards=GRANT_WRITE,
        status_code=200,
    )
    async def delete_line(
        self,
        credit_grant_id: FromPath[UUID],
        credit_line_id: FromPath[UUID],
        session: Session,
        principal: Caller,
    ) -> Response[CreditProfileOut]:
        return with_etag(
            await terms.delete_temporary_line(session, credit_grant_id, credit_line_id, _grantor(principal))
        )


ROUTES: list[Any, CreditGrantController] = [
    FundAccountController,
    StatementController,
    RemittanceController,
    FeeGrantController,
    AdjustmentController,
    CreditGrantController,
]
