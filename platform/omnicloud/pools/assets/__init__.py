"""A customer's assets at a glance (资产): every fund account and its credit standing."""
