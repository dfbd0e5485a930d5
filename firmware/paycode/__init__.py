"""paycode: the portable payment-code core, the same files on the token and the host.

Usage: from paycode import totp, payment_code, parse_code
"""

from .aes import BACKEND as AES_BACKEND  # noqa: F401
from .b32 import decode_secret  # noqa: F401
from .civil import civil_from_unix, unix_from_civil  # noqa: F401
from .code import check_prefix, group4, parse_code, payment_code, resolve_step  # noqa: F401
from .ct import equal  # noqa: F401
from .damm import damm  # noqa: F401
from .ff1 import ff1_decrypt, ff1_encrypt  # noqa: F401
from .otp import hmac_sha1, hmac_sha256, hotp, sync_mac, totp  # noqa: F401

FORMAT_VERSION = 1
