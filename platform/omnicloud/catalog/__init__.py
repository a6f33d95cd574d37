"""Products, SKUs, categories, units, brands and regions."""
