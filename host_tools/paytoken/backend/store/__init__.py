"""The issuer's storage: ``models`` (the tables), ``tables`` (their Core handles), ``db``
(engines and the Alembic ``migrations``), ``sql`` (the hot path's fixed SQL), ``tx``
(driver-level transactions, the raw pool and SQLite's group commit) and ``audit`` (the
hash-chained log)."""
