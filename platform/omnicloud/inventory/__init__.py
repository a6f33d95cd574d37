"""Warehouses, lots, stock levels and the movement journal."""
