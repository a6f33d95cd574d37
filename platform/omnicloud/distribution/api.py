"""Distribution over REST: join applications, product authorisations (and what a customer may
buy), supply relations and guide prices. Reads need distribution:read, writes distribution:write
(except that a dealer files join applications under its own subtree); configuration updates and
deletes need If-Match. Dealers see their own subtree only."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, Request, Response, delete, get, patch, post, put
from litestar.datastructures import State
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from omnicloud.catalog.api import with_etag
from omnicloud.core.db import utcnow
from omnicloud.core.deps import Caller, Cursor, Limit, Session, page_limit
from omnicloud.core.http import idempotent, if_match, requires
from omnicloud.distribution import availability, service
from omnicloud.distribution.availability import AvailabilityOut
from omnicloud.distribution.schemas import (
    ApplicationState,
    ApprovalIn,
    ApprovalOut,
    AuthorizedSkuPage,
    Effect,
    GuidePriceIn,
    GuidePriceOut,
    GuidePricePage,
    GuidePricePatch,
    GuidePricePut,
    JoinApplicationIn,
    JoinApplicationOut,
    JoinApplicationPage,
    ProductAuthorizationIn,
    ProductAuthorizationOut,
    ProductAuthorizationPage,
    ProductAuthorizationPatch,
    RejectionIn,
    SupplyRelationIn,
    SupplyRelationOut,
    SupplyRelationPage,
    SupplyRelationPatch,
)

READ = [requires("distribution:read")]
WRITE = [requires("distribution:write")]
TAGS = ["distribution"]


def _version(request: Request[Any, Any, Any]) -> int:
    version = if_match(request)
    assert version is not None  # required: if_match answers 428 without it
    return version


class JoinApplicationController(Controller):
    path = "/api/v1/join-applications"
    tags = TAGS

    @get(
        "/",
        operation_id="listJoinApplications",
        summary="List join applications (a dealer sees those it filed or under its subtree)",
        guards=READ,
    )
    async def list_applications(
        self,
        session: Session,
        state: State,
        principal: Caller,
        application_state: Annotated[
            ApplicationState | None, QueryParameter(name="state", description="pending, approved or rejected")
        ] = None,
        requested_parent_id: FromQuery[UUID | None] = None,
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> JoinApplicationPage:
        items, nxt = await service.list_join_applications(
            session,
            principal,
            cursor,
            page_limit(state, limit),
            state=application_state,
            requested_parent_id=requested_parent_id,
        )
        return JoinApplicationPage(items=items, next_cursor=nxt)

    @post(
        "/",
        operation_id="createJoinApplication",
        summary="Apply to join (申请加盟)",
        description="A dealer applies for a sub-dealer inside its own subtree (under itself when "
        "requested_parent_id is omitted); the brand's staff record applications with "
        "distribution:write (403 without it).",
        guards=READ,
    )
    async def create_application(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[JoinApplicationIn],
        session: Session,
        principal: Caller,
    ) -> Response[JoinApplicationOut]:
        return await idempotent(
            request, session, lambda: service.create_join_application(session, data, principal)
        )

    @get(
        "/{join_application_id:uuid}",
        operation_id="getJoinApplication",
        summary="Show a join application",
        guards=READ,
    )
    async def get_application(
        self, join_application_id: FromPath[UUID], session: Session, principal: Caller
    ) -> JoinApplicationOut:
        return await service.get_join_application(session, join_application_id, principal)

    @post(
        "/{join_application_id:uuid}/approve",
        operation_id="approveJoinApplication",
        summary="Approve a pending application: create the dealer (and a dealer user with a key)",
        description="Creates the customer (kind dealer) with the given code under the requested "
        "parent and, with dealer_user, a dealer user and an API key whose secret is shown once, all "
        "in one transaction. A decided application is a 409. Send an Idempotency-Key.",
        guards=WRITE,
        status_code=200,
    )
    async def approve(
        self,
        join_application_id: FromPath[UUID],
        request: Request[Any, Any, Any],
        data: JSONBody[ApprovalIn],
        session: Session,
        principal: Caller,
    ) -> Response[ApprovalOut]:
        return await idempotent(
            request,
            session,
            lambda: service.approve_join_application(session, join_application_id, data, principal),
            status_code=200,
        )

    @post(
        "/{join_application_id:uuid}/reject",
        operation_id="rejectJoinApplication",
        summary="Reject a pending application with a reason",
        description="A decided application is a 409; nothing else changes.",
        guards=WRITE,
        status_code=200,
    )
    async def reject(
        self,
        join_application_id: FromPath[UUID],
        request: Request[Any, Any, Any],
        data: JSONBody[RejectionIn],
        session: Session,
        principal: Caller,
    ) -> Response[JoinApplicationOut]:
        return await idempotent(
            request,
            session,
            lambda: service.reject_join_application(session, join_application_id, data.reason, principal),
            status_code=200,
        )


class ProductAuthorizationController(Controller):
    path = "/api/v1/product-authorizations"
    tags = TAGS

    @get(
        "/",
        operation_id="listProductAuthorizations",
        summary="List product authorisation rules (a dealer sees those for its subtree's customers)",
        guards=READ,
    )
    async def list_rules(
        self,
        session: Session,
        state: State,
        principal: Caller,
        customer_id: FromQuery[UUID | None] = None,
        effect: FromQuery[Effect | None] = None,
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> ProductAuthorizationPage:
        items, nxt = await service.list_product_authorizations(
            session, principal, cursor, page_limit(state, limit), customer_id=customer_id, effect=effect
        )
        return ProductAuthorizationPage(items=items, next_cursor=nxt)

    @post(
        "/",
        operation_id="createProductAuthorization",
        summary="Grant or deny products to buyers (商品授权)",
        description="The most specific rule wins (subject, then product); deny beats grant at the "
        "same specificity; a SKU no rule matches is authorised.",
        guards=WRITE,
    )
    async def create_rule(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[ProductAuthorizationIn],
        session: Session,
        principal: Caller,
    ) -> Response[ProductAuthorizationOut]:
        return await idempotent(
            request, session, lambda: service.create_product_authorization(session, data, principal)
        )

    @get(
        "/{product_authorization_id:uuid}",
        operation_id="getProductAuthorization",
        summary="Show a product authorisation rule",
        guards=READ,
    )
    async def get_rule(
        self, product_authorization_id: FromPath[UUID], session: Session, principal: Caller
    ) -> Response[ProductAuthorizationOut]:
        return with_etag(
            await service.get_product_authorization(session, product_authorization_id, principal)
        )

    @patch(
        "/{product_authorization_id:uuid}",
        operation_id="updateProductAuthorization",
        summary="Change a product authorisation rule (If-Match: the version you read)",
        guards=WRITE,
    )
    async def update_rule(
        self,
        product_authorization_id: FromPath[UUID],
        data: JSONBody[ProductAuthorizationPatch],
        request: Request[Any, Any, Any],
        session: Session,
        principal: Caller,
    ) -> Response[ProductAuthorizationOut]:
        version = _version(request)
        return with_etag(
            await service.update_product_authorization(
                session, product_authorization_id, data, version, principal
            )
        )

    @delete(
        "/{product_authorization_id:uuid}",
        operation_id="deleteProductAuthorization",
        summary="Delete a product authorisation rule (If-Match: the version you read)",
        guards=WRITE,
    )
    async def delete_rule(
        self,
        product_authorization_id: FromPath[UUID],
        request: Request[Any, Any, Any],
        session: Session,
        principal: Caller,
    ) -> None:
        await service.delete_product_authorization(
            session, product_authorization_id, _version(request), principal
        )


class AuthorizedSkuController(Controller):
    path = "/api/v1/customers"
    tags = TAGS

    @get(
        "/{customer_id:uuid}/authorized-skus",
        operation_id="listAuthorizedSkus",
        summary="The active SKUs a customer may buy on a day (a dealer asks for its subtree only)",
        description="`date` defaults to today. Each SKU names the rule that authorised it "
        "(null: no rule applies, and an unnamed SKU is authorised).",
        guards=READ,
    )
    async def authorized_skus(
        self,
        customer_id: FromPath[UUID],
        session: Session,
        state: State,
        principal: Caller,
        on: FromQuery[date | None] = None,
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> AuthorizedSkuPage:
        items, nxt = await service.list_authorized_skus(
            session, customer_id, principal, cursor, page_limit(state, limit), on or utcnow().date()
        )
        return AuthorizedSkuPage(items=items, next_cursor=nxt)

    @get(
        "/{customer_id:uuid}/available-stock",
        operation_id="getAvailableStock",
        summary="For the SKUs asked (sku_id, repeated, at most 100): may the customer buy them, and how "
        "much each brand warehouse has available",
        description="Available is on hand − reserved over lots that have not expired, in the brand's "
        "active warehouses (orders ship from those). A SKU the customer may not buy shows "
        "`authorized: false` and no stock. A dealer asks for its own subtree only.",
        guards=[requires("stock:read")],
    )
    async def available_stock(
        self,
        customer_id: FromPath[UUID],
        session: Session,
        principal: Caller,
        sku_ids: Annotated[list[UUID] | None, QueryParameter(name="sku_id")] = None,
        on: FromQuery[date | None] = None,
    ) -> AvailabilityOut:
        return await availability.available_stock(
            session, principal, customer_id, sku_ids or [], on or utcnow().date()
        )


class SupplyRelationController(Controller):
    path = "/api/v1/supply-relations"
    tags = TAGS

    @get(
        "/",
        operation_id="listSupplyRelations",
        summary="List supply relations (a dealer sees those of buyers in its subtree)",
        guards=READ,
    )
    async def list_relations(
        self,
        session: Session,
        state: State,
        principal: Caller,
        buyer_id: FromQuery[UUID | None] = None,
        seller_id: FromQuery[UUID | None] = None,
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> SupplyRelationPage:
        items, nxt = await service.list_supply_relations(
            session, principal, cursor, page_limit(state, limit), buyer_id=buyer_id, seller_id=seller_id
        )
        return SupplyRelationPage(items=items, next_cursor=nxt)

    @post(
        "/",
        operation_id="createSupplyRelation",
        summary="Say which seller supplies a buyer (供货关系)",
        description="The seller is the brand (null) or an ancestor of the buyer in the dealer tree "
        "(422 naming seller_id). A relation overlapping another of the same buyer at the same "
        "priority (validity, products and regions) is a 422 naming both.",
        guards=WRITE,
    )
    async def create_relation(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[SupplyRelationIn],
        session: Session,
        principal: Caller,
    ) -> Response[SupplyRelationOut]:
        return await idempotent(
            request, session, lambda: service.create_supply_relation(session, data, principal)
        )

    @get(
        "/{supply_relation_id:uuid}",
        operation_id="getSupplyRelation",
        summary="Show a supply relation",
        guards=READ,
    )
    async def get_relation(
        self, supply_relation_id: FromPath[UUID], session: Session, principal: Caller
    ) -> Response[SupplyRelationOut]:
        return with_etag(await service.get_supply_relation(session, supply_relation_id, principal))

    @patch(
        "/{supply_relation_id:uuid}",
        operation_id="updateSupplyRelation",
        summary="Change a supply relation (If-Match: the version you read)",
        guards=WRITE,
    )
    async def update_relation(
        self,
        supply_relation_id: FromPath[UUID],
        data: JSONBody[SupplyRelationPatch],
        request: Request[Any, Any, Any],
        session: Session,
        principal: Caller,
    ) -> Response[SupplyRelationOut]:
        version = _version(request)
        return with_etag(
            await service.update_supply_relation(session, supply_relation_id, data, version, principal)
        )

    @delete(
        "/{supply_relation_id:uuid}",
        operation_id="deleteSupplyRelation",
        summary="Delete a supply relation (If-Match: the version you read)",
        guards=WRITE,
    )
    async def delete_relation(
        self,
        supply_relation_id: FromPath[UUID],
        request: Request[Any, Any, Any],
        session: Session,
        principal: Caller,
    ) -> None:
        await service.delete_supply_relation(session, supply_relation_id, _version(request), principal)


class GuidePriceController(Controller):
    path = "/api/v1/guide-prices"
    tags = TAGS

    @get("/", operation_id="listGuidePrices", summary="List guide price ranges", guards=READ)
    async def list_guides(
        self,
        session: Session,
        state: State,
        sku_id: FromQuery[UUID | None] = None,
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> GuidePricePage:
        items, nxt = await service.list_guide_prices(session, cursor, page_limit(state, limit), sku_id=sku_id)
        return GuidePricePage(items=items, next_cursor=nxt)

    @post(
        "/",
        operation_id="createGuidePrice",
        summary="Set a guide price range (指导价) for a SKU in a unit",
        description="Ranges of the same SKU and unit must not overlap in validity (422).",
        guards=WRITE,
    )
    async def create_guide(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[GuidePriceIn],
        session: Session,
        principal: Caller,
    ) -> Response[GuidePriceOut]:
        return await idempotent(
            request, session, lambda: service.create_guide_price(session, data, principal)
        )

    @get(
        "/{guide_price_id:uuid}",
        operation_id="getGuidePrice",
        summary="Show a guide price range",
        guards=READ,
    )
    async def get_guide(self, guide_price_id: FromPath[UUID], session: Session) -> Response[GuidePriceOut]:
        return with_etag(await service.get_guide_price(session, guide_price_id))

    @put(
        "/{guide_price_id:uuid}",
        operation_id="replaceGuidePrice",
        summary="Replace a guide price range and its validity (If-Match: the version you read)",
        guards=WRITE,
    )
    async def replace_guide(
        self,
        guide_price_id: FromPath[UUID],
        data: JSONBody[GuidePricePut],
        request: Request[Any, Any, Any],
        session: Session,
        principal: Caller,
    ) -> Response[GuidePriceOut]:
        version = _version(request)
        return with_etag(await service.update_guide_price(session, guide_price_id, data, version, principal))

    @patch(
        "/{guide_price_id:uuid}",
        operation_id="updateGuidePrice",
        summary="Change a guide price range (If-Match: the version you read)",
        guards=WRITE,
    )
    async def update_guide(
        self,
        guide_price_id: FromPath[UUID],
        data: JSONBody[GuidePricePatch],
        request: Request[Any, Any, Any],
        session: Session,
        principal: Caller,
    ) -> Response[GuidePriceOut]:
        version = _version(request)
        return with_etag(await service.update_guide_price(session, guide_price_id, data, version, principal))

    @delete(
        "/{guide_price_id:uuid}",
        operation_id="deleteGuidePrice",
        summary="Delete a guide price range (If-Match: the version you read)",
        guards=WRITE,
    )
    async def delete_guide(
        self,
        guide_price_id: FromPath[UUID],
        request: Request[Any, Any, Any],
        session: Session,
        principal: Caller,
    ) -> None:
        await service.delete_guide_price(session, guide_price_id, _version(request), principal)


ROUTES: list[Any] = [
    JoinApplicationController,
    ProductAuthorizationController,
    AuthorizedSkuController,
    SupplyRelationController,
    GuidePriceController,
]
