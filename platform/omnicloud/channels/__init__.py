"""Customers (dealers and terminals), the dealer tree and sales orgs."""
