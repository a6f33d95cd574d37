"""The order lifecycle (订单状态机) as an explicit table. Pure: no I/O.

::

    submit             → pending_approval (it needs approval) or approved
    pending_approval   approve → approved, reject → rejected, cancel → cancelled
    approved           ship_partial → partially_shipped, ship_full → shipped, cancel → cancelled
    partially_shipped  ship_partial → partially_shipped, ship_full → shipped
    shipped            confirm_receipt (签收) → completed

``cancel`` takes ``pending_approval`` or ``approved`` to ``cancelled`` (nothing has shipped, so
every hold can be voided); cancelling after a partial shipment is not part of this slice.
``submit`` starts an order: ``pending_approval`` when it needs approval, else ``approved``. Any
other (status, action) pair is an :class:`IllegalTransition`, which the API answers with a 409.
"""

from __future__ import annotations

from typing import Literal, get_args

Status = Literal[
    "pending_approval", "approved", "partially_shipped", "shipped", "completed", "cancelled", "rejected"
]
Action = Literal["submit", "approve", "reject", "ship_partial", "ship_full", "cancel", "confirm_receipt"]
STATUSES: tuple[Status, ...] = get_args(Status)
ACTIONS: tuple[Action, ...] = get_args(Action)
OPEN: frozenset[Status] = frozenset({"pending_approval", "approved", "partially_shipped"})
"""Statuses whose goods are not all shipped yet."""
FINAL: frozenset[Status] = frozenset({"completed", "cancelled", "rejected"})

TRANSITIONS: dict[tuple[Status, Action], Status] = {
    ("pending_approval", "approve"): "approved",
    ("pending_approval", "reject"): "rejected",
    ("pending_approval", "cancel"): "cancelled",
    ("approved", "ship_partial"): "partially_shipped",
    ("approved", "ship_full"): "shipped",
    ("approved", "cancel"): "cancelled",
    ("partially_shipped", "ship_partial"): "partially_shipped",
    ("partially_shipped", "ship_full"): "shipped",
    ("shipped", "confirm_receipt"): "completed",
}


class IllegalTransition(ValueError):
    """``action`` is not allowed on an order in ``status``."""

    def __init__(self, status: Status, action: Action) -> None:
        super().__init__(f"an order that is {status.replace('_', ' ')} cannot {action.replace('_', ' ')}")
        self.status = status
        self.action = action


def submitted(*, needs_approval: bool) -> Status:
    """The status a new order starts in."""
    return "pending_approval" if needs_approval else "approved"


def transition(status: Status, action: Action) -> Status:
    """The status after ``action``; :class:`IllegalTransition` when the table has no such move
    (``submit`` never applies to an existing order)."""
    after = TRANSITIONS.get((status, action))
    if after is None:
        raise IllegalTransition(status, action)
    return after


def allowed(status: Status) -> list[Action]:
    """The actions an order in ``status`` may take, in :data:`ACTIONS` order."""
    return [a for a in ACTIONS if (status, a) in TRANSITIONS]
