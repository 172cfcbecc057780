"""Cron expressions: the classic 5-field syntax, evaluated in UTC.

::

    ┌ minute        0-59
    │ ┌ hour        0-23
    │ │ ┌ day       1-31
    │ │ │ ┌ month   1-12 or JAN-DEC
    │ │ │ │ ┌ weekday 0-7 or SUN-SAT (0 and 7 are Sunday)
    * * * * *

Each field takes ``*``, a value, a range ``a-b``, a step ``*/n``, ``a-b/n`` or ``a/n``
(from ``a`` to the end), and comma-separated lists of those. Names are case-insensitive.
The shortcuts ``@yearly`` (``@annually``), ``@monthly``, ``@weekly``, ``@daily``
(``@midnight``) and ``@hourly`` are accepted. As in Vixie cron, when both the day and the
weekday are restricted a time matches if *either* does (``0 0 1 * MON`` fires on the
1st and on every Monday). An expression that can never fire (``0 0 30 2 *``) is refused.

>>> expression = parse_cron("*/15 9-17 * * MON-FRI")
>>> expression.next_after(datetime(2026, 1, 2, 17, 50, tzinfo=UTC))
datetime.datetime(2026, 1, 5, 9, 0, tzinfo=datetime.timezone.utc)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from shipyard.pipelines.errors import PipelineDefinitionError

__all__ = ["CronExpression", "parse_cron"]

_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
_DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
# (field name, lowest, highest, names mapped to numbers)
_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, {name: index + 1 for index, name in enumerate(_MONTHS)}),
    ("day of week", 0, 7, {name: index for index, name in enumerate(_DAYS)}),
)
_SEARCH_YEARS = 8  # leap days recur every 4 (8 across a skipped century leap year)
_MAX_LENGTH = 256


@dataclass(frozen=True, slots=True)
class CronExpression:
    """A parsed cron expression; ``next_after`` gives its next fire time."""

    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    """0 = Sunday ... 6 = Saturday (7 is folded into 0)."""
    days_restricted: bool
    weekdays_restricted: bool

    def __str__(self) -> str:
        return self.text

    def matches(self, moment: datetime) -> bool:
        """Whether the minute of ``moment`` (UTC) is a fire time."""
        moment = _utc(moment)
        return (
            moment.minute in self.minutes
            and moment.hour in self.hours
            and moment.month in self.months
            and self._day_matches(moment)
        )

    def next_after(self, moment: datetime) -> datetime:
        """The first fire time strictly after ``moment`` (an aware UTC datetime)."""
        current = _utc(moment).replace(second=0, microsecond=0) + timedelta(minutes=1)
        limit = current + timedelta(days=366 * _SEARCH_YEARS)
        while current < limit:
            if current.month not in self.months:
                year, month = (
                    (current.year + 1, 1)
                    if current.month == 12
                    else (
                        current.year,
                        current.month + 1,
                    )
                )
                current = current.replace(year=year, month=month, day=1, hour=0, minute=0)
                continue
            if not self._day_matches(current):
                current = (current + timedelta(days=1)).replace(hour=0, minute=0)
                continue
            if current.hour not in self.hours:
                current = (current + timedelta(hours=1)).replace(minute=0)
                continue
            if current.minute not in self.minutes:
                current += timedelta(minutes=1)
                continue
            return current
        raise PipelineDefinitionError(
            f"Cron expression {self.text!r} never fires.",
            hint="Check the day and month fields (e.g. February has no 30th).",
        )

    def _day_matches(self, moment: datetime) -> bool:
        day_ok = moment.day in self.days
        weekday_ok = (moment.isoweekday() % 7) in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return day_ok or weekday_ok
        return day_ok and weekday_ok


def parse_cron(text: str, *, where: str = "cron expression") -> CronExpression:
    """Parse a 5-field cron expression; ``PipelineDefinitionError`` names the bad field.

    ``where`` says where the expression came from, for the error message.
    """
    if not isinstance(text, str):
        raise PipelineDefinitionError(
            f"{where} must be a string like '0 3 * * *', not {type(text).__name__}."
        )
    if len(text) > _MAX_LENGTH:
        raise PipelineDefinitionError(f"{where} is {len(text)} characters; at most {_MAX_LENGTH}.")
    stripped = " ".join(text.split())
    expanded = _ALIASES.get(stripped.lower(), stripped)
    if expanded.startswith("@"):
        raise PipelineDefinitionError(
            f"{where}: unknown shortcut {stripped!r}.",
            hint=f"Known shortcuts: {', '.join(sorted(_ALIASES))}.",
        )
    fields = expanded.split(" ")
    if len(fields) != 5:
        raise PipelineDefinitionError(
            f"{where} {text!r} has {len(fields) if expanded else 0} fields; a cron expression "
            "has 5: minute hour day-of-month month day-of-week.",
            hint="E.g. '0 3 * * *' (03:00 UTC daily) or '*/15 * * * MON-FRI'.",
        )
    values = [
        _parse_field(field, spec, where, text) for field, spec in zip(fields, _FIELDS, strict=True)
    ]
    weekdays = frozenset(day % 7 for day in values[4])
    expression = CronExpression(
        text=stripped,
        minutes=values[0],
        hours=values[1],
        days=values[2],
        months=values[3],
        weekdays=weekdays,
        days_restricted=not fields[2].startswith("*"),
        weekdays_restricted=not fields[4].startswith("*"),
    )
    expression.next_after(datetime(2000, 1, 1, tzinfo=UTC))  # refuse one that never fires
    return expression


def _parse_field(
    field: str, spec: tuple[str, int, int, dict[str, int]], where: str, text: str
) -> frozenset[int]:
    name, low, high, names = spec
    chosen: set[int] = set()
    for part in field.split(","):
        if not part:
            raise _field_error(where, text, name, field, "has an empty list item")
        base, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) == 0:
                raise _field_error(where, text, name, field, f"has a bad step {step_text!r}")
            step = int(step_text)
        if base == "*":
            start, end = low, high
        elif "-" in base:
            first, _, last = base.partition("-")
            start = _value(first, spec, where, text, field)
            end = _value(last, spec, where, text, field)
            if start > end:
                raise _field_error(where, text, name, field, f"has the backwards range {base!r}")
        else:
            start = _value(base, spec, where, text, field)
            end = high if slash else start
        chosen.update(range(start, end + 1, step))
    return frozenset(chosen)


def _value(
    token: str, spec: tuple[str, int, int, dict[str, int]], where: str, text: str, field: str
) -> int:
    name, low, high, names = spec
    upper = token.upper()
    if upper in names:
        return names[upper]
    if not token.isdigit():
        expected = f"{low}-{high}" + (f" or {names and '/'.join(names)}" if names else "")
        raise _field_error(where, text, name, field, f"has {token!r}; expected {expected}")
    number = int(token)
    if not low <= number <= high:
        raise _field_error(where, text, name, field, f"has {number}, outside {low}-{high}")
    return number


def _field_error(
    where: str, text: str, name: str, field: str, problem: str
) -> PipelineDefinitionError:
    return PipelineDefinitionError(
        f"{where} {text!r}: the {name} field {field!r} {problem}.",
        hint="Fields: minute hour day-of-month month day-of-week, e.g. '30 2 * * MON-FRI'.",
    )


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"datetime {moment.isoformat()} has no time zone; use UTC")
    return moment.astimezone(UTC)
