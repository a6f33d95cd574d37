"""The invoice request lifecycle (开票申请状态) as an explicit table. Pure: no I/O.

::

    request            → requested
    requested          approve → approved, reject → rejected, cancel → cancelled
    approved           issue → issued, reject → rejected

``cancel`` is the requester withdrawing a request nobody has approved yet; once approved, only
the brand may stop it (``reject``). ``issued``, ``rejected`` and ``cancelled`` are final: a
rejected or cancelled request frees its quantities for a new request. Any other (status,
action) pair is an :class:`IllegalTransition`, which the API answers with a 409.
"""

from __future__ import annotations

from typing import Literal, get_args

Status = Literal["requested", "approved", "issued", "rejected", "cancelled"]
Action = Literal["approve", "reject", "cancel", "issue"]
STATUSES: tuple[Status, ...] = get_args(Status)
ACTIONS: tuple[Action, ...] = get_args(Action)
ACTIVE: frozenset[Status] = frozenset({"requested", "approved", "issued"})
"""Statuses whose quantities are taken: they count against what may still be requested."""
FINAL: frozenset[Status] = frozenset({"issued", "rejected", "cancelled"})
START: Status = "requested"

TRANSITIONS: dict[tuple[Status, Action], Status] = {
    ("requested", "approve"): "approved",
    ("requested", "reject"): "rejected",
    ("requested", "cancel"): "cancelled",
    ("approved", "issue"): "issued",
    ("approved", "reject"): "rejected",
}


class IllegalTransition(ValueError):
    """``action`` is not allowed on an invoice request in ``status``."""

    def __init__(self, status: Status, action: Action) -> None:
        super().__init__(f"an invoice request that is {status} cannot {action}")
        self.status = status
        self.action = action


def transition(status: Status, action: Action) -> Status:
    """The status after ``action``; :class:`IllegalTransition` when the table has no such move."""
    after = TRANSITIONS.get((status, action))
    if after is None:
        raise IllegalTransition(status, action)
    return after


def allowed(status: Status) -> list[Action]:
    """The actions a request in ``status`` may take, in :data:`ACTIONS` order."""
    return [a for a in ACTIONS if (status, a) in TRANSITIONS]
