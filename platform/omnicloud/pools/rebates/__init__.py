"""Rebate accrual runs (返利计提): what a rebate policy earned per customer in a period, reviewed and
settled into the customers' rebate accounts."""
