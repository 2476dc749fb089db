"""Experiments that are searches rather than grids."""
