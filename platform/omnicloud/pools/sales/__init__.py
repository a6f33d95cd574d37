"""Sales facts: the goods that left the brand (or a dealer) and came back, line by line."""
