"""paytoken host tools: factory station, service desk, issuer backend and simulator."""

__version__ = "0.1.0"
