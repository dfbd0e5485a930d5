"""Alembic migrations of the backend schema (run by ``paytoken db init``)."""
