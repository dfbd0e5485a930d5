"""The issuer's domain, one module per concern; ``Backend`` (``facade``) is its one entry.

See ``facade`` for the layout. Usage::

    from paytoken.backend.service import Backend
    backend = Backend.open("sqlite:///paytoken.db", Keyring.load())
"""

from paytoken.backend import BackendError
from paytoken.backend.service.facade import Backend
from paytoken.backend.service.keys import SCHEME_CACHE_S
from paytoken.backend.service.parties import MERCHANT_CACHE_S
from paytoken.backend.service.verification import THROTTLED, Verdict

__all__ = ["MERCHANT_CACHE_S", "SCHEME_CACHE_S", "THROTTLED", "Backend", "BackendError", "Verdict"]
