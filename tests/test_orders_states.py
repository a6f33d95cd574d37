"""The order state machine (pools.order_states), every (status, action) pair."""

from __future__ import annotations

import pytest

from omnicloud.pools import order_states as sm

EXPECTED = {
    "pending_approval": {"approve": "approved", "reject": "rejected", "cancel": "cancelled"},
    "approved": {"ship_partial": "partially_shipped", "ship_full": "shipped", "cancel": "cancelled"},
    "partially_shipped": {"ship_partial": "partially_shipped", "ship_full": "shipped", "cancel": "closed"},
    "shipped": {"confirm_receipt": "completed"},
    "completed": {},
    "closed": {},
    "cancelled": {},
    "rejected": {},
}


def test_the_table_names_every_status():
    assert set(EXPECTED) == set(sm.STATUSES)


@pytest.mark.parametrize("status", sm.STATUSES)
@pytest.mark.parametrize("action", sm.ACTIONS)
def test_every_pair(status, action):
    after = EXPECTED[status].get(action)
    if after is None:
        with pytest.raises(sm.IllegalTransition) as caught:
            sm.transition(status, action)
        assert (caught.value.status, caught.value.action) == (status, action)
        assert status.replace("_", " ") in str(caught.value)
    else:
        assert sm.transition(status, action) == after


@pytest.mark.parametrize("status", sm.STATUSES)
def test_allowed_lists_exactly_the_legal_actions(status):
    assert sm.allowed(status) == [a for a in sm.ACTIONS if a in EXPECTED[status]]


def test_submit_starts_an_order_and_never_applies_again():
    assert sm.submitted(needs_approval=True) == "pending_approval"
    assert sm.submitted(needs_approval=False) == "approved"
    assert all((s, "submit") not in sm.TRANSITIONS for s in sm.STATUSES)


def test_final_statuses_allow_nothing_and_open_ones_are_unshipped():
    assert all(sm.allowed(s) == [] for s in sm.FINAL)
    assert sm.OPEN == {"pending_approval", "approved", "partially_shipped"}
