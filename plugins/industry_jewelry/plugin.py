"""Hook implementations of the jewelry pack."""
