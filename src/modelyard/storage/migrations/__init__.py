"""Alembic migrations for modelyard's database (run them with ``modelyard.storage.upgrade``)."""
