"""Jewelry industry pack: the gold board (金价牌) and gold pricing."""
