"""The life of a rebate accrual run as an explicit table. Pure: no I/O.

::

    request    → computing (a new run, or a run of the same period again)
    computing  computed → review, fail → discarded, discard → discarded, request → computing
    review     request → computing, adjust → review, settle → settled, discard → discarded
    discarded  request → computing
    settled    nothing: a settled run is final; later periods carry its corrections

Any other (state, action) pair is an :class:`IllegalTransition`, which the API answers with a 409.
"""

from __future__ import annotations

from typing import Literal, get_args

State = Literal["computing", "review", "settled", "discarded"]
Action = Literal["request", "computed", "fail", "adjust", "settle", "discard"]
STATES: tuple[State, ...] = get_args(State)
ACTIONS: tuple[Action, ...] = get_args(Action)

TRANSITIONS: dict[tuple[State, Action], State] = {
    ("computing", "request"): "computing",
    ("computing", "computed"): "review",
    ("computing", "fail"): "discarded",
    ("computing", "discard"): "discarded",
    ("review", "request"): "computing",
    ("review", "adjust"): "review",
    ("review", "settle"): "settled",
    ("review", "discard"): "discarded",
    ("discarded", "request"): "computing",
}


class IllegalTransition(ValueError):
    """``action`` is not allowed on a run in ``state``."""

    def __init__(self, state: str, action: str) -> None:
        super().__init__(f"a rebate accrual run that is {state} cannot {action}")
        self.state = state
        self.action = action


def transition(state: str, action: str) -> State:
    """The state after ``action``; :class:`IllegalTransition` when the table has no such move."""
    after = TRANSITIONS.get((state, action))  # type: ignore[call-overload]
    if after is None:
        raise IllegalTransition(state, action)
    return after


def allowed(state: str) -> list[Action]:
    """The actions a run in ``state`` may take, in :data:`ACTIONS` order."""
    return [a for a in ACTIONS if (state, a) in TRANSITIONS]
