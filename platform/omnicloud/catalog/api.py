"""Catalog over REST: units, brands, categories, products, SKUs, price previews, regions."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, Request, Response, get, patch, post
from litestar.datastructures import State
from litestar.params import FromPath, FromQuery, JSONBody, PathParameter, QueryParameter

from omnicloud.catalog import service
from omnicloud.catalog.schemas import (
    BARCODE_PATTERN,
    PRODUCT_CSV_COLUMNS,
    BrandIn,
    BrandOut,
    BrandPage,
    CategoryIn,
    CategoryOut,
    CategoryPage,
    ImportResult,
    NamePatch,
    PriceOut,
    ProductIn,
    ProductOut,
    ProductPage,
    ProductPatch,
    RegionIn,
    RegionOut,
    RegionPage,
    SkuIn,
    SkuOut,
    SkuPage,
    SkuPatch,
    Status,
    TreePatch,
    UnitIn,
    UnitOut,
    UnitPage,
)
from omnicloud.channels import service as channels
from omnicloud.core.deps import Caller, Cursor, Limit, Reader, Session, page_limit
from omnicloud.core.http import CSV, CsvUpload, idempotent, if_match, read_csv, requires

Text = Annotated[str | None, QueryParameter(max_length=200, pattern=r"^[^\x00]*$")]
"""A free-text query parameter (PostgreSQL text cannot hold NUL)."""
BarcodePath = Annotated[str, PathParameter(max_length=64, pattern=BARCODE_PATTERN)]


def with_etag(out: Any) -> Response[Any]:
    return Response(out, headers={"ETag": f'"{out.version}"'})


# --- units and brands -----------------------------------------------------------------------


class UnitController(Controller):
    path = "/api/v1/units"
    tags = ["catalog"]

    @get("/", operation_id="listUnits", summary="List units of measure", guards=[requires("catalog:read")])
    async def list_units(
        self,
        session: Session,
        state: State,
        q: Text = None,
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> UnitPage:
        items, nxt = await service.list_units(session, cursor, page_limit(state, limit), q)
        return UnitPage(items=items, next_cursor=nxt)

    @post(
        "/", operation_id="createUnit", summary="Create a unit of measure", guards=[requires("catalog:write")]
    )
    async def create_unit(
        self, request: Request[Any, Any, Any], data: JSONBody[UnitIn], session: Session
    ) -> Response[UnitOut]:
        return await idempotent(request, session, lambda: service.create_unit(session, data))

    @get("/{unit_id:uuid}", operation_id="getUnit", summary="Show a unit", guards=[requires("catalog:read")])
    async def get_unit(self, unit_id: FromPath[UUID], session: Session) -> UnitOut:
        return await service.get_unit(session, unit_id)

    @patch(
        "/{unit_id:uuid}",
        operation_id="updateUnit",
        summary="Rename a unit",
        guards=[requires("catalog:write")],
    )
    async def update_unit(
        self, unit_id: FromPath[UUID], data: JSONBody[NamePatch], session: Session
    ) -> UnitOut:
        return await service.update_unit(session, unit_id, data)


class BrandController(Controller):
    path = "/api/v1/brands"
    tags = ["catalog"]

    @get("/", operation_id="listBrands", summary="List brands", guards=[requires("catalog:read")])
    async def list_brands(
        self,
        session: Session,
        state: State,
        q: Text = None,
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> BrandPage:
        items, nxt = await service.list_brands(session, cursor, page_limit(state, limit), q)
        return BrandPage(items=items, next_cursor=nxt)

    @post("/", operation_id="createBrand", summary="Create a brand", guards=[requires("catalog:write")])
    async def create_brand(
        self, request: Request[Any, Any, Any], data: JSONBody[BrandIn], session: Session
    ) -> Response[BrandOut]:
        return await idempotent(request, session, lambda: service.create_brand(session, data))

    @get(
        "/{brand_id:uuid}", operation_id="getBrand", summary="Show a brand", guards=[requires("catalog:read")]
    )
    async def get_brand(self, brand_id: FromPath[UUID], session: Session) -> BrandOut:
        return await service.get_brand(session, brand_id)

    @patch(
        "/{brand_id:uuid}",
        operation_id="updateBrand",
        summary="Rename a brand",
        guards=[requires("catalog:write")],
    )
    async def update_brand(
        self, brand_id: FromPath[UUID], data: JSONBody[NamePatch], session: Session
    ) -> BrandOut:
        return await service.update_brand(session, brand_id, data)


# --- categories -----------------------------------------------------------------------------


class CategoryController(Controller):
    path = "/api/v1/categories"
    tags = ["catalog"]

    @get(
        "/",
        operation_id="listCategories",
        summary="List categories (children of parent_id, or roots only)",
        guards=[requires("catalog:read")],
    )
    async def list_categories(
        self,
        session: Session,
        state: State,
        parent_id: FromQuery[UUID | None] = None,
        roots: FromQuery[bool] = False,
        q: Text = None,
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> CategoryPage:
        items, nxt = await service.list_categories(
            session, cursor, page_limit(state, limit), parent_id=parent_id, roots=roots, q=q
        )
        return CategoryPage(items=items, next_cursor=nxt)

    @post("/", operation_id="createCategory", summary="Create a category", guards=[requires("catalog:write")])
    async def create_category(
        self, request: Request[Any, Any, Any], data: JSONBody[CategoryIn], session: Session
    ) -> Response[CategoryOut]:
        return await idempotent(request, session, lambda: service.create_category(session, data))

    @get(
        "/{category_id:uuid}",
        operation_id="getCategory",
        summary="Show a category",
        guards=[requires("catalog:read")],
    )
    async def get_category(self, category_id: FromPath[UUID], session: Session) -> CategoryOut:
        return await service.get_category(session, category_id)

    @patch(
        "/{category_id:uuid}",
        operation_id="updateCategory",
        summary="Rename a category or move it in the tree",
        description="Moving a category under itself or one of its descendants is a 422 naming parent_id.",
        guards=[requires("catalog:write")],
    )
    async def update_category(
        self, category_id: FromPath[UUID], data: JSONBody[TreePatch], session: Session
    ) -> CategoryOut:
        return await service.update_category(session, category_id, data)


# --- products -------------------------------------------------------------------------------


class ProductController(Controller):
    path = "/api/v1/products"
    tags = ["catalog"]

    @get(
        "/",
        operation_id="listProducts",
        summary="List products (category_id includes its subcategories)",
        guards=[requires("catalog:read")],
    )
    async def list_products(
        self,
        reader: Reader,
        state: State,
        category_id: FromQuery[UUID | None] = None,
        brand_id: FromQuery[UUID | None] = None,
        status: FromQuery[Status | None] = None,
        q: Text = None,
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> ProductPage:
        items, nxt = await service.list_products(
            reader,
            cursor,
            page_limit(state, limit),
            category_id=category_id,
            brand_id=brand_id,
            status=status,
            q=q,
        )
        return ProductPage(items=items, next_cursor=nxt)

    @post(
        "/",
        operation_id="createProduct",
        summary="Create a product with its unit conversions",
        guards=[requires("catalog:write")],
    )
    async def create_product(
        self, request: Request[Any, Any, Any], data: JSONBody[ProductIn], session: Session
    ) -> Response[ProductOut]:
        return await idempotent(request, session, lambda: service.create_product(session, data))

    @get(
        "/{product_id:uuid}",
        operation_id="getProduct",
        summary="Show a product; the ETag carries its version",
        guards=[requires("catalog:read")],
    )
    async def get_product(self, product_id: FromPath[UUID], session: Session) -> Response[ProductOut]:
        return with_etag(await service.get_product(session, product_id))

    @patch(
        "/{product_id:uuid}",
        operation_id="updateProduct",
        summary="Change a product (If-Match: the version you read)",
        description="Without If-Match: 428. With a stale version: 412. `conversions` replaces the set.",
        guards=[requires("catalog:write")],
    )
    async def update_product(
        self,
        product_id: FromPath[UUID],
        data: JSONBody[ProductPatch],
        request: Request[Any, Any, Any],
        session: Session,
    ) -> Response[ProductOut]:
        version = if_match(request)
        assert version is not None
        return with_etag(await service.update_product(session, product_id, data, version))

    @post(
        "/import",
        operation_id="importProducts",
        summary="Upsert products and SKUs from CSV (all or nothing)",
        description="Columns: " + ", ".join(PRODUCT_CSV_COLUMNS) + ". One row per SKU; an "
        "empty cell keeps the current value. Every bad row is reported with its line number.",
        guards=[requires("catalog:write")],
        operation_class=CsvUpload,
        status_code=200,
    )
    async def import_products(self, request: Request[Any, Any, Any], session: Session) -> ImportResult:
        return await service.import_products_csv(session, await read_csv(request))

    @get(
        "/export",
        operation_id="exportProducts",
        summary="Products and SKUs as CSV, in the import's columns",
        guards=[requires("catalog:read")],
        media_type=CSV,
    )
    async def export_products(self, session: Session, principal: Caller) -> str:
        return await service.export_products_csv(session, show_cost=service.may_see_cost(principal))


# --- SKUs -----------------------------------------------------------------------------------


class SkuController(Controller):
    path = "/api/v1/skus"
    tags = ["catalog"]

    @get(
        "/",
        operation_id="listSkus",
        summary="List SKUs (cost_price only with catalog:cost)",
        guards=[requires("catalog:read")],
    )
    async def list_skus(
        self,
        session: Session,
        state: State,
        principal: Caller,
        product_id: FromQuery[UUID | None] = None,
        barcode: Text = None,
        status: FromQuery[Status | None] = None,
        q: Text = None,
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> SkuPage:
        items, nxt = await service.list_skus(
            session,
            cursor,
            page_limit(state, limit),
            show_cost=service.may_see_cost(principal),
            product_id=product_id,
            barcode=barcode,
            status=status,
            q=q,
        )
        return SkuPage(items=items, next_cursor=nxt)

    @post("/", operation_id="createSku", summary="Create a SKU", guards=[requires("catalog:write")])
    async def create_sku(
        self, request: Request[Any, Any, Any], data: JSONBody[SkuIn], session: Session, principal: Caller
    ) -> Response[SkuOut]:
        show_cost = service.may_see_cost(principal)
        return await idempotent(
            request, session, lambda: service.create_sku(session, data, show_cost=show_cost)
        )

    @get(
        "/by-barcode/{barcode:str}",
        operation_id="getSkuByBarcode",
        summary="Find the SKU with this barcode",
        guards=[requires("catalog:read")],
    )
    async def by_barcode(self, barcode: BarcodePath, session: Session, principal: Caller) -> SkuOut:
        return await service.sku_by_barcode(session, barcode, show_cost=service.may_see_cost(principal))

    @get(
        "/{sku_id:uuid}",
        operation_id="getSku",
        summary="Show a SKU; the ETag carries its version",
        guards=[requires("catalog:read")],
    )
    async def get_sku(self, sku_id: FromPath[UUID], session: Session, principal: Caller) -> Response[SkuOut]:
        return with_etag(await service.get_sku(session, sku_id, show_cost=service.may_see_cost(principal)))

    @patch(
        "/{sku_id:uuid}",
        operation_id="updateSku",
        summary="Change a SKU (If-Match: the version you read)",
        description="Without If-Match: 428. With a stale version: 412.",
        guards=[requires("catalog:write")],
    )
    async def update_sku(
        self,
        sku_id: FromPath[UUID],
        data: JSONBody[SkuPatch],
        request: Request[Any, Any, Any],
        session: Session,
        principal: Caller,
    ) -> Response[SkuOut]:
        version = if_match(request)
        assert version is not None
        out = await service.update_sku(
            session, sku_id, data, version, show_cost=service.may_see_cost(principal)
        )
        return with_etag(out)

    @get(
        "/{sku_id:uuid}/price",
        operation_id="previewSkuPrice",
        summary="Preview the unit price and amount for a quantity (and customer)",
        description="Asks the tenant's enabled pricing plugins, then falls back to the list price. "
        "422 when no price can be determined. Dealers preview for customers in their own subtree.",
        guards=[requires("catalog:read")],
    )
    async def price(
        self,
        sku_id: FromPath[UUID],
        session: Session,
        state: State,
        principal: Caller,
        quantity: FromQuery[Decimal] = Decimal(1),
        customer_id: FromQuery[UUID | None] = None,
    ) -> PriceOut:
        if principal.is_dealer and customer_id is None:
            customer_id = principal.customer_id
        if customer_id is not None:  # 404 for a customer the caller may not see
            await channels.visible_customer(session, customer_id, principal)
        return await service.price_preview(session, state.plugins, sku_id, quantity, customer_id)


# --- regions --------------------------------------------------------------------------------


class RegionController(Controller):
    path = "/api/v1/regions"
    tags = ["regions"]

    @get(
        "/",
        operation_id="listRegions",
        summary="List regions (children of parent_id, or the subtree of within_id)",
        guards=[requires("regions:read")],
    )
    async def list_regions(
        self,
        session: Session,
        state: State,
        parent_id: FromQuery[UUID | None] = None,
        within_id: FromQuery[UUID | None] = None,
        q: Text = None,
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> RegionPage:
        items, nxt = await service.list_regions(
            session, cursor, page_limit(state, limit), parent_id=parent_id, within_id=within_id, q=q
        )
        return RegionPage(items=items, next_cursor=nxt)

    @post("/", operation_id="createRegion", summary="Create a region", guards=[requires("regions:write")])
    async def create_region(
        self, request: Request[Any, Any, Any], data: JSONBody[RegionIn], session: Session
    ) -> Response[RegionOut]:
        return await idempotent(request, session, lambda: service.create_region(session, data))

    @get(
        "/{region_id:uuid}",
        operation_id="getRegion",
        summary="Show a region",
        guards=[requires("regions:read")],
    )
    async def get_region(self, region_id: FromPath[UUID], session: Session) -> RegionOut:
        return await service.get_region(session, region_id)

    @patch(
        "/{region_id:uuid}",
        operation_id="updateRegion",
        summary="Rename a region or move it (its descendants move with it)",
        description="Moving a region under itself or one of its descendants is a 422 naming parent_id.",
        guards=[requires("regions:write")],
    )
    async def update_region(
        self, region_id: FromPath[UUID], data: JSONBody[TreePatch], session: Session
    ) -> RegionOut:
        return await service.update_region(session, region_id, data)


ROUTES: list[Any] = [
    UnitController,
    BrandController,
    CategoryController,
    ProductController,
    SkuController,
    RegionController,
]
