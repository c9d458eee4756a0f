"""ISO 8601 text as Wiz sends it -> epoch milliseconds (OCSF's timestamp_t), one value at a time, fast.

Accepts a date and time with ``T`` (or a space), 0 to 9 fractional digits, and ``Z`` or a ``+hh:mm`` /
``-hhmm`` offset; without one the time is taken as UTC, as ``core.times.parse_time`` does. Fractions
beyond milliseconds are truncated (floor). Anything else is None: the caller keeps the text.
"""

from __future__ import annotations

import re
from datetime import date

_ISO = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:[.,](\d{1,9}))?(?:([Zz])|([+-])(\d\d):?(\d\d))?"
)
_EPOCH_DAY = date(1970, 1, 1).toordinal()


def epoch_ms(value: object) -> int | None:
    if type(value) is not str:
        return None
    match = _ISO.fullmatch(value.strip())
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, _, sign, off_h, off_m = match.groups()
    hour_i, minute_i, second_i = int(hour), int(minute), int(second)
    if hour_i > 23 or minute_i > 59 or second_i > 59:
        return None
    try:
        days = date(int(year), int(month), int(day)).toordinal() - _EPOCH_DAY
    except ValueError:
        return None
    seconds = ((days * 24 + hour_i) * 60 + minute_i) * 60 + second_i
    if sign is not None:
        oh, om = int(off_h), int(off_m)
        if oh > 23 or om > 59:
            return None
        offset = (oh * 60 + om) * 60
        seconds += -offset if sign == "+" else offset
    millis = int((fraction + "00")[:3]) if fraction else 0
    return seconds * 1000 + millis
