"""UTC civil time <-> Unix seconds by plain arithmetic, 1970-01-01 to 2199-12-31.

Usage: unix_from_civil(2038, 1, 19, 3, 14, 8)  # -> 2147483648
Never the port's mktime/gmtime: their epochs differ (2000 on ESP32, 1970 on rp2)
and their small ints are 30 bits, so 2038 and 2106 must be plain big-int sums.
"""

try:
    from micropython import const
except ImportError:
    const = lambda x: x  # noqa: E731

_DAY = const(86400)
_MIN_YEAR = const(1970)
_MAX_YEAR = const(2199)
_DAYS_1970_2200 = const(84006)  # days from 1970-01-01 to 2200-01-01
_MDAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _leap(y):
    return y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)


def _days_from_civil(y, m, d):
    # Days since 1970-01-01 of a proleptic Gregorian date, years counted from March
    # so that the leap day falls last (the "days from civil" algorithm).
    if m <= 2:
        y -= 1
    era = y // 400
    yoe = y - era * 400
    mp = m - 3 if m > 2 else m + 9
    doy = (153 * mp + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def unix_from_civil(y, mo, d, h=0, mi=0, s=0):
    if not _MIN_YEAR <= y <= _MAX_YEAR:
        raise ValueError("year %d outside 1970..2199" % y)
    if not 1 <= mo <= 12:
        raise ValueError("month %d outside 1..12" % mo)
    dim = 29 if mo == 2 and _leap(y) else _MDAYS[mo - 1]
    if not 1 <= d <= dim:
        raise ValueError("day %d outside 1..%d for %04d-%02d" % (d, dim, y, mo))
    if not (0 <= h <= 23 and 0 <= mi <= 59 and 0 <= s <= 59):
        raise ValueError("time %02d:%02d:%02d is not a valid UTC time of day" % (h, mi, s))
    days = _days_from_civil(y, mo, d)
    # days < 2^17 and the seconds of a day < 2^17: only the final sum may be a big int.
    return days * _DAY + (h * 3600 + mi * 60 + s)


def civil_from_unix(t):
    # -> (year, month, day, hour, minute, second), all UTC.
    if t < 0:
        raise ValueError("time before 1970-01-01 is not supported")
    days = t // _DAY
    if days >= _DAYS_1970_2200:
        raise ValueError("time after 2199-12-31 is not supported")
    secs = t - days * _DAY
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    y = yoe + era * 400 + (1 if m <= 2 else 0)
    return (y, m, d, secs // 3600, (secs // 60) % 60, secs % 60)
