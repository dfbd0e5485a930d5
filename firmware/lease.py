"""The unlock lease: the board's hardware watchdog, which resets an open token unless fed.

Usage: import lease; lease.hold()  # -> the lease in ms (app.boot after UNLOCK; the desk between steps)
"""
# An UNLOCK opens the REPL for this lease only: the config on flash stays locked, so
# any reset (this watchdog's, the button's, machine.reset(), a power cut) boots the
# token locked again. board.wdt(ms) is machine.WDT on a chip (rp2: at most 8.3 s) and
# the supervisor's watchdog model on a sim board. A soft reset frees the object but
# not the watchdog, which keeps counting: hold() then makes a new one, which feeds it.
# Only a hard reset stops it (machine.reset(), how the desk ends a session).
_w = None


def hold():
    global _w
    import board

    ms = getattr(board, "LEASE_MS", 8000)
    if _w is None:
        _w = board.wdt(ms)
    else:
        _w.feed()
    return ms
