"""The factory station and service desk: device transport and deploy.

Usage: ``from paytoken.station.transport import Device``; ``paytoken.station.deploy``.
"""
