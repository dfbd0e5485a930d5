"""The issuer's HTTP API: ``app`` (the FastAPI app), ``schemas``, ``deps`` (the keys),
``errors`` (error kinds as statuses) and one router per resource (``payments``, ``tokens``,
``factory``, ``operators``, ``wallet``). The only package that knows HTTP."""
