"""Companion labs (notebooks 07–12): consumer groups in production, on the kit's own data."""
