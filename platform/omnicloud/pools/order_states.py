"""The order lifecycle (订单状态机) as an explicit table. Pure: no I/O.

::

    submit             → pending_approval (it needs approval) or approved
    pending_approval   approve → approved, reject → rejected, cancel → cancelled
    approved           ship_partial → partially_shipped, ship_full → shipped, cancel → cancelled
    partially_shipped  ship_partial → partially_shipped, ship_full → shipped, cancel → closed
    shipped            confirm_receipt (签收) → completed

``cancel`` takes ``pending_approval`` or ``approved`` to ``cancelled`` (nothing has shipped, so
every hold can be voided). Cancelling a ``partially_shipped`` order is a partial cancel: it
closes the rest and the order ends ``closed`` (shipped in part, the rest cancelled), a final
status like ``completed``. ``submit`` starts an order: ``pending_approval`` when it needs
approval, else ``approved``. Any other (status, action) pair is an :class:`IllegalTransition`,
which the API answers with a 409.

Returns (退货) are documents of their own with a smaller table (:data:`RETURN_TRANSITIONS`)::

    requested  approve → approved, reject → rejected, cancel → cancelled
    approved   receive → received, cancel → cancelled

A return does not move its order: it may be filed while the order is in :data:`RETURNABLE`
(something has shipped) and takes back quantities of its lines.
"""

from __future__ import annotations

from typing import Literal, get_args

Status = Literal[
    "pending_approval",
    "approved",
    "partially_shipped",
    "shipped",
    "completed",
    "closed",
    "cancelled",
    "rejected",
]
Action = Literal["submit", "approve", "reject", "ship_partial", "ship_full", "cancel", "confirm_receipt"]
STATUSES: tuple[Status, ...] = get_args(Status)
ACTIONS: tuple[Action, ...] = get_args(Action)
OPEN: frozenset[Status] = frozenset({"pending_approval", "approved", "partially_shipped"})
"""Statuses whose goods are not all shipped yet."""
FINAL: frozenset[Status] = frozenset({"completed", "closed", "cancelled", "rejected"})
RETURNABLE: frozenset[Status] = frozenset({"partially_shipped", "shipped", "completed", "closed"})
"""Statuses in which goods have left the warehouse, so a return may be filed."""

TRANSITIONS: dict[tuple[Status, Action], Status] = {
    ("pending_approval", "approve"): "approved",
    ("pending_approval", "reject"): "rejected",
    ("pending_approval", "cancel"): "cancelled",
    ("approved", "ship_partial"): "partially_shipped",
    ("approved", "ship_full"): "shipped",
    ("approved", "cancel"): "cancelled",
    ("partially_shipped", "ship_partial"): "partially_shipped",
    ("partially_shipped", "ship_full"): "shipped",
    ("partially_shipped", "cancel"): "closed",
    ("shipped", "confirm_receipt"): "completed",
}


ReturnStatus = Literal["requested", "approved", "received", "rejected", "cancelled"]
ReturnAction = Literal["approve", "reject", "receive", "cancel"]
RETURN_STATUSES: tuple[ReturnStatus, ...] = get_args(ReturnStatus)
RETURN_ACTIONS: tuple[ReturnAction, ...] = get_args(ReturnAction)
RETURN_OPEN: frozenset[ReturnStatus] = frozenset({"requested", "approved"})
"""Return statuses that still hold their quantities against the order lines."""

RETURN_TRANSITIONS: dict[tuple[ReturnStatus, ReturnAction], ReturnStatus] = {
    ("requested", "approve"): "approved",
    ("requested", "reject"): "rejected",
    ("requested", "cancel"): "cancelled",
    ("approved", "receive"): "received",
    ("approved", "cancel"): "cancelled",
}


class IllegalTransition(ValueError):
    """``action`` is not allowed on an order (or a return, ``what``) in ``status``."""

    def __init__(self, status: str, action: str, what: str = "an order") -> None:
        super().__init__(f"{what} that is {status.replace('_', ' ')} cannot {action.replace('_', ' ')}")
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


def return_transition(status: ReturnStatus, action: ReturnAction) -> ReturnStatus:
    """The return's status after ``action``; :class:`IllegalTransition` when not allowed."""
    after = RETURN_TRANSITIONS.get((status, action))
    if after is None:
        raise IllegalTransition(status, action, "a return")
    return after


def return_allowed(status: ReturnStatus) -> list[ReturnAction]:
    """The actions a return in ``status`` may take, in :data:`RETURN_ACTIONS` order."""
    return [a for a in RETURN_ACTIONS if (status, a) in RETURN_TRANSITIONS]
