"""Field types the HTTP API's request models share (``api/``: schemas, operators, factory, wallet).

Usage::

    from paytoken.backend.api.types import JsonInt
    amount: JsonInt = Field(ge=1)
"""

# No `from __future__ import annotations`: FastAPI resolves these Annotated aliases.

from typing import Annotated

from pydantic import BeforeValidator, StrictFloat, StrictInt

# A JSON number with no fraction is an integer (JSON has one number type, and JSON Schema's
# "integer" admits 1250.0: 1250 and 1250.0 are the same value); 12.5, strings and booleans
# are not.
JsonInt = Annotated[StrictInt, BeforeValidator(
    lambda v: int(v) if isinstance(v, float) and v.is_integer() and abs(v) < 2**63 else v)]

# Any JSON number (an integer or not); never a string or a boolean.
JsonNumber = StrictFloat | JsonInt
