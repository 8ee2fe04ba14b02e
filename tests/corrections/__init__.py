"""Corrections by finance: reversals and maker-checker adjustments."""
