"""Flow timestamps as the CICFlowMeter releases spell them, read into one datetime64[ns] column.

A flow's time is kept beside its features (``Dataset.times``), never as one: it orders a stream and
places the boundary of a temporal split. The releases write it several ways, and :func:`parse_times`
reads each of them; a value none of them matches is NaT, and the reader that called it stops with one
line naming the file and the row (a flow that cannot be placed in time cannot be ordered by it).

- ISO 8601, as the improved CICIDS2017 re-extraction and the Python CICFlowMeter write it:
  ``2017-07-07 12:59:21.088203``, ``2017-07-07T12:59:21``, ``2017-07-07`` (midnight). A value with a
  UTC offset (``+02:00``, ``Z``) is converted to UTC; one without is kept as written.
- Day first, with slashes, as CICFlowMeter-V3/V4 (CSE-CIC-IDS2018) and the 2017 GeneratedLabelledFlows
  write it: ``14/02/2018 08:31:01``, ``3/7/2017 8:55`` (no seconds), ``7/7/2017 3:30:00 PM`` (a
  12-hour clock with AM/PM). Month-first dates (US style) are not read: ``7/13/2017`` is an error.

The 2017 GeneratedLabelledFlows CSVs write afternoon hours on a 12-hour clock *without* AM/PM (Friday's
DDoS at ``7/7/2017 3:56`` is 15:56): those values are taken as written, so the days are in order
but a day's afternoon sorts among its morning. The improved re-extraction (the bundled sample) has
24-hour ISO times and no such ambiguity.

>>> parse_times(pd.Series(["2017-07-07 12:59:21.088203", "3/7/2017 8:55", "7/7/2017 3:30:00 PM", "garbled"]))
0   2017-07-07 12:59:21.088203
1   2017-07-03 08:55:00.000000
2   2017-07-07 15:30:00.000000
3                          NaT
dtype: datetime64[ns]
"""

from __future__ import annotations

import pandas as pd

__all__ = ["parse_times", "describe_time"]

_ISO = r"^\d{4}-\d{1,2}-\d{1,2}(?:[T ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?(?:Z|[+-]\d{2}:?\d{2})?$"
_DAY_FIRST = (r"^(?P<day>\d{1,2})/(?P<month>\d{1,2})/(?P<year>\d{4})\s+(?P<hour>\d{1,2}):(?P<minute>\d{2})"
              r"(?::(?P<second>\d{2})(?P<fraction>\.\d+)?)?\s*(?P<half>[AaPp][Mm])?$")


def parse_times(values: pd.Series) -> pd.Series:
    """``values`` (text, as read from a CSV) as datetime64[ns], aligned with them; NaT where unreadable.

    >>> parse_times(pd.Series(["2017-07-04T10:00:00+02:00", "13/7/2017 12:00 AM", "7/13/2017 10:00"])).tolist()
    [Timestamp('2017-07-04 08:00:00'), Timestamp('2017-07-13 00:00:00'), NaT]
    """
    text = values.astype("str").str.strip()
    out = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns]")
    iso = text.str.match(_ISO)
    if iso.any():
        parsed = pd.to_datetime(text[iso], format="ISO8601", errors="coerce", utc=True)
        out[iso] = parsed.dt.tz_localize(None).astype("datetime64[ns]")
    parts = text[~iso].str.extract(_DAY_FIRST)
    parts = parts[parts["day"].notna()]
    if len(parts):
        hour = parts["hour"].astype(int)
        half = parts["half"].fillna("").str.upper()
        hour = hour.where(half == "", hour % 12 + (half == "PM") * 12)  # 12 AM is 0 h, 12 PM is 12 h
        fields = pd.DataFrame({
            "year": parts["year"].astype(int), "month": parts["month"].astype(int), "day": parts["day"].astype(int),
            "hour": hour, "minute": parts["minute"].astype(int), "second": parts["second"].fillna("0").astype(int),
        })
        stamp = pd.to_datetime(fields, errors="coerce")
        fraction = pd.to_timedelta(parts["fraction"].fillna(".0").astype(float), unit="s")
        valid = (half == "") | parts["hour"].astype(int).between(1, 12)
        out[parts.index] = (stamp + fraction).where(valid & (hour < 24)).astype("datetime64[ns]")
    return out


def describe_time(value: pd.Timestamp) -> str:
    """A time as ISO text: seconds, with microseconds only when it has any.

    >>> describe_time(pd.Timestamp("2017-07-03 08:55:58")), describe_time(pd.Timestamp("2017-07-03 08:55:58.5"))
    ('2017-07-03T08:55:58', '2017-07-03T08:55:58.500000')
    """
    return pd.Timestamp(value).isoformat(timespec="microseconds" if pd.Timestamp(value).microsecond else "seconds")
