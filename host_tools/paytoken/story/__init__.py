"""The story: ``paytoken demo`` (the whole product in one run), a simulated year in the
field (``year``) and the battery estimate (``battery``).

Usage::

    from paytoken.story import year
    report = year.simulate(tokens=20, days=365, seed=1)
"""

from __future__ import annotations
