"""The host's calls into an open token: the factory station's and the service desk's contract.

Usage (the host, in the raw REPL): import hostapi; hostapi.probe()
"""
# Each call prints one line, the repr() of its result, which the host parses
# (paytoken.station.hostcalls); a refusal raises (ValueError/OSError), and the host
# sees the exception's last line. Arguments are literals: int, float, str, bytes,
# bool, None, lists and dicts of them. Nothing here prints a secret. The host calls
# nothing else of the firmware: a rename here breaks an import, not a factory line.
#
#   probe()               -> (fw, board, state, image): fw the firmware VERSION,
#                            board board.NAME (None if unnamed); state None (no
#                            config), "corrupt", or (token_id, locked, has_secret);
#                            image "files" or the frozen image's id
#   hold_lease()          -> ms: start or feed the unlock lease (lease.hold())
#   read_clock()          -> (utc, lost): the RTC through the board's driver (made on
#                            the first clock call, kept until a reset), and whether
#                            its time was lost
#   set_clock(utc)        -> None: the RTC set to UTC seconds
#   edge()                -> (utc, waited_us): wait for the RTC's next seconds edge;
#                            utc the second that began, waited_us the time from the
#                            call's start to the last read that still saw the old
#                            second (the edge came later). OSError if it never ticks
#   codes(times)          -> [code, ...]: the payment code of the stored config at
#                            each UTC time (app.code_at)
#   save_config(cfg)      -> None: the whole config written (config.save: atomic)
#   save_fields(**fields) -> None: some fields of the stored config changed
#                            (config.update); ValueError without a config
#   wipe_config()         -> gone: the config and its temp removed; True when gone

try:
    from micropython import const
except ImportError:
    const = lambda x: x  # noqa: E731

_EDGE_POLLS = const(200000)  # RTC reads before edge() gives up (seconds at I2C speed)
_MAX_TIMES = const(500)  # times per codes() call: the answer stays a few KiB

_rtc = None  # the board's RTC driver, made on the first clock call


def _out(v):
    print(repr(v))


def _utc(t):
    if type(t) is not int or t < 0:
        raise ValueError("a time is UTC seconds, a non-negative int")
    return t


def probe():
    import board
    import config
    import fwversion

    try:
        c = config.load()
        st = None if c is None else (c["token_id"], c["locked"], len(c["secret"]) > 0)
    except ValueError:
        st = "corrupt"
    c = None
    try:
        from fwimage import ID as image
    except ImportError:
        image = "files"
    _out((fwversion.VERSION, getattr(board, "NAME", None), st, image))


def hold_lease():
    import lease

    _out(lease.hold())


def _clock():
    global _rtc
    if _rtc is None:
        import app
        import board

        _rtc = app.devices(board, board.cold_boot())[1]
    return _rtc


def read_clock():
    from paycode.civil import unix_from_civil

    r = _clock()
    _out((unix_from_civil(*r.datetime()), bool(r.lost_power)))


def set_clock(utc):
    from paycode.civil import civil_from_unix

    _clock().set_datetime(civil_from_unix(_utc(utc)))
    _out(None)


def edge():
    from time import ticks_diff, ticks_us

    from paycode.civil import unix_from_civil

    r = _clock()
    k = p = ticks_us()
    s = r.datetime()
    for _ in range(_EDGE_POLLS):
        a = ticks_us()
        d = r.datetime()
        if d != s:
            _out((unix_from_civil(*d), ticks_diff(p, k)))
            return
        p = a
    raise OSError("the RTC does not tick")


def codes(times):
    if type(times) is not list or len(times) > _MAX_TIMES:
        raise ValueError("times: a list of at most %d UTC seconds" % _MAX_TIMES)
    for t in times:
        _utc(t)
    import app
    import config

    c = config.load()
    if c is None:
        raise ValueError("no config")
    out = [app.code_at(c, t) for t in times]
    c = None
    _out(out)


def save_config(cfg):
    import config

    if type(cfg) is not dict:
        raise ValueError("the config is a dict")
    config.save(cfg)
    _out(None)


def save_fields(**fields):
    import config

    config.update(config.PATH, **fields)
    _out(None)


def wipe_config():
    import os

    import config

    for p in (config.PATH, config.PATH + ".tmp"):
        try:
            os.remove(p)
        except OSError:
            pass
    try:
        os.stat(config.PATH)
        _out(False)
    except OSError:
        _out(True)
