"""Environments: their records, their lifecycle, and the runtime that makes them real."""
