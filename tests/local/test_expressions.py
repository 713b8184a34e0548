"""The Data Pipeline expression language, checked against the AWS developer guide's examples."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeworker.local._expressions import (
    FUNCTIONS,
    ExpressionError,
    add_period,
    evaluate,
    has_expression,
    parse_period,
)
from pipeworker.local._values import Fields, Ref, format_joda

# The guide's examples use myDateTime = May 24, 2011 @ 5:10 pm GMT.
MY_DATE_TIME = "2011-05-24T17:10:00"

OBJECTS: dict[str, dict[str, Sequence[str | Ref]]] = {
    "ShellOut": {
        "type": ["ShellCommandActivity"],
        "name": ["ShellOut"],
        "myDateTime": [MY_DATE_TIME],
        "@scheduledStartTime": [MY_DATE_TIME],
        "@scheduledEndTime": ["2011-05-24T18:10:00"],
        "input": [Ref("HourlyData")],
        "output": [Ref("Output")],
        "onFail": [Ref("FailureNotify")],
        "myList": ["one", "two"],
        "myList1": ["1", "2"],
        "myNum": ["5"],
        "myCode": ["007"],
        "myBig": ["123456789012345678901234567890"],
        "myDays": ["2"],
        "*myPassword": ["s3cret"],
        "dependsOn": [Ref("A"), Ref("B")],
        "self": ["#{self}"],
        "ping": ["#{pong}"],
        "pong": ["x#{ping}"],
    },
    "HourlyData": {
        "directoryPath": ["s3://bucket/#{format(@scheduledStartTime,'YYYY-MM-dd-HH')}"],
        "@scheduledStartTime": ["2011-05-24T16:00:00"],
        "schedule": [Ref("HourlyPeriod")],
        "broken": ["#{nope(1)}"],
    },
    "Output": {"directoryPath": ["s3://out/#{name}"], "name": ["Output"]},
    "HourlyPeriod": {"period": ["1 hour"]},
    "FailureNotify": {
        "node": [Ref("ShellOut")],
        "message": ["Error for interval #{node.@scheduledStartTime}..#{node.@scheduledEndTime}."],
    },
    "A": {"@status": ["FINISHED"]},
    "B": {"@status": ["RUNNING"]},
}


def lookup(object_id: str) -> Fields | None:
    return OBJECTS.get(object_id)


def ev(text: str, object_id: str = "ShellOut", objects: Mapping[str, Fields] | None = None) -> str:
    return evaluate(text, object_id, (objects or OBJECTS).get)


@pytest.mark.parametrize(
    ("expression", "result"),
    [
        # Date and Time Functions page (its results print the DateTime's internal form; ours
        # renders as the service writes dates).
        ("#{day(myDateTime)}", "24"),
        ("#{dayOfYear(myDateTime)}", "144"),
        ("#{firstOfMonth(myDateTime)}", "2011-05-01T17:10:00"),
        ("#{format(myDateTime,'YYYY-MM-dd HH:mm:ss z')}", "2011-05-24 17:10:00 UTC"),
        ("#{hour(myDateTime)}", "17"),
        ("#{makeDate(2011,5,24)}", "2011-05-24T00:00:00"),
        ("#{makeDateTime(2011,5,24,14,21)}", "2011-05-24T14:21:00"),
        ("#{midnight(myDateTime)}", "2011-05-24T00:00:00"),
        ("#{minusDays(myDateTime,1)}", "2011-05-23T17:10:00"),
        ("#{minusHours(myDateTime,1)}", "2011-05-24T16:10:00"),
        ("#{minusMinutes(myDateTime,1)}", "2011-05-24T17:09:00"),
        ("#{minusMonths(myDateTime,1)}", "2011-04-24T17:10:00"),
        ("#{minusWeeks(myDateTime,1)}", "2011-05-17T17:10:00"),
        ("#{minusYears(myDateTime,1)}", "2010-05-24T17:10:00"),
        ("#{minute(myDateTime)}", "10"),
        ("#{month(myDateTime)}", "5"),
        ("#{plusDays(myDateTime,1)}", "2011-05-25T17:10:00"),
        ("#{plusHours(myDateTime,1)}", "2011-05-24T18:10:00"),
        ("#{plusMinutes(myDateTime,1)}", "2011-05-24T17:11:00"),
        ("#{plusMonths(myDateTime,1)}", "2011-06-24T17:10:00"),
        ("#{plusWeeks(myDateTime,1)}", "2011-05-31T17:10:00"),
        ("#{plusYears(myDateTime,1)}", "2012-05-24T17:10:00"),
        ("#{sunday(myDateTime)}", "2011-05-22T17:10:00"),
        ("#{year(myDateTime)}", "2011"),
        ("#{yesterday(myDateTime)}", "2011-05-23T17:10:00"),
        ("#{plusSeconds(myDateTime,30)}", "2011-05-24T17:10:30"),
        ("#{minusSeconds(myDateTime,30)}", "2011-05-24T17:09:30"),
        # Mathematical Functions page.
        ("#{1 + 2}", "3"),
        ("#{1 - 2}", "-1"),
        ("#{1 * 2}", "2"),
        ("#{1 / 2}", "0"),
        ("#{1.0 / 2}", "0.5"),
        ("#{2 ^ 2}", "4.0"),
        # String Functions page.
        ('#{"hel" + "lo"}', "hello"),
        # Expressions page.
        ("#{format(@scheduledStartTime,'YYYY-MM-dd')}", "2011-05-24"),
        (
            "#{format(minusDays(@scheduledStartTime,1),'YYYY-MM-dd hh:mm:ss')}",
            "2011-05-23 05:10:00",
        ),
        (
            "#{format(minusMinutes(@scheduledStartTime,30),'YYYY-MM-dd hh:mm:ss')}",
            "2011-05-24 04:40:00",
        ),
        ("#{format(@scheduledStartTime, 'YYYY-MM-dd-HH-mm-ss')}", "2011-05-24-17-10-00"),
        ("/tmp/stdout:#{@scheduledStartTime}", "/tmp/stdout:2011-05-24T17:10:00"),
        ("s3://mybucket/#{name}.csv", "s3://mybucket/ShellOut.csv"),
        ("#{'this is ' + myList}", "this is one,this is two"),
    ],
)
def test_documented_examples(expression: str, result: str) -> None:
    assert ev(expression) == result


def test_text_without_expressions_is_returned_unchanged() -> None:
    assert (
        ev("plain text, with { braces } and # hashes") == "plain text, with { braces } and # hashes"
    )
    assert not has_expression("plain { } #")
    assert has_expression("a #{b} c")


def test_references_through_ref_fields_evaluate_in_the_referenced_objects_context() -> None:
    # directoryPath's own expression uses HourlyData's @scheduledStartTime, not ShellOut's.
    assert ev("#{input.directoryPath}") == "s3://bucket/2011-05-24-16"
    assert ev("#{output.directoryPath}") == "s3://out/Output"
    assert ev("#{input.schedule.period}") == "1 hour"
    assert ev("#{input}") == "HourlyData"


def test_node_back_reference_from_an_alarm() -> None:
    assert ev("#{message}", "FailureNotify") == (
        "Error for interval 2011-05-24T17:10:00..2011-05-24T18:10:00."
    )
    assert ev("#{format(minusMinutes(node.@scheduledStartTime,30),'HH:mm')}", "FailureNotify") == (
        "16:40"
    )


def test_multi_valued_fields_map_and_render_as_comma_separated() -> None:
    assert ev("#{myList}") == "one,two"
    assert ev("#{dependsOn.@status}") == "FINISHED,RUNNING"
    assert ev("#{myList1 + 1}") == "2,3"


def test_id_and_encrypted_fields() -> None:
    assert ev("#{@id}/#{id}") == "ShellOut/ShellOut"
    assert ev("#{*myPassword}") == "s3cret"
    assert ev("#{myPassword}") == "s3cret"


def test_field_text_is_a_number_in_arithmetic_but_keeps_its_text() -> None:
    assert ev("#{myNum + 1}") == "6"
    assert ev("#{myNum * myDays}") == "10"
    assert ev("#{'code-' + myCode}") == "code-007"
    assert ev("#{myCode}") == "007"
    assert ev("#{plusDays(myDateTime, myDays)}") == "2011-05-26T17:10:00"
    # Too big for a Java long: text, so + concatenates and - refuses.
    assert ev("#{'id-' + myBig}") == "id-123456789012345678901234567890"
    with pytest.raises(ExpressionError, match="needs numbers"):
        ev("#{myBig - 1}")


@pytest.mark.parametrize(
    ("expression", "result"),
    [
        ("#{-2 ^ 2}", "-4.0"),
        ("#{2 ^ -1}", "0.5"),
        ("#{2 ^ 3 ^ 2}", "512.0"),
        ("#{7 / -2}", "-3"),
        ("#{-7 / 2}", "-3"),
        ("#{(1 + 2) * 3}", "9"),
        ("#{1 + 2 * 3}", "7"),
        ("#{10 - 2 - 3}", "5"),
        ("#{--1}", "1"),
        ("#{1.5 * 2}", "3.0"),
        ("#{10000000.0 * 2}", "2.0E7"),
        ("#{1 + 'a'}", "1a"),
        ("#{'a' + 1 + 2}", "a12"),
        ("#{'it\\'s'}", "it's"),
        ('#{"C:\\temp"}', "C:\\temp"),
        ("#{ 1 }#{2}", "12"),
        ("#{'}'}", "}"),
    ],
)
def test_operators(expression: str, result: str) -> None:
    assert ev(expression) == result


def test_month_arithmetic_clamps_to_the_end_of_the_month() -> None:
    assert ev("#{plusMonths(makeDate(2011,1,31),1)}") == "2011-02-28T00:00:00"
    assert ev("#{plusYears(makeDate(2012,2,29),1)}") == "2013-02-28T00:00:00"
    assert ev("#{minusMonths(makeDate(2012,3,31),1)}") == "2012-02-29T00:00:00"


def test_in_time_zone_changes_what_format_and_the_extractors_see() -> None:
    expression = "#{format(inTimeZone(myDateTime,'America/Los_Angeles'),'YYYY-MM-dd HH:mm z ZZ')}"
    assert ev(expression) == "2011-05-24 10:10 PDT -07:00"
    assert ev("#{hour(inTimeZone(myDateTime,'Asia/Tokyo'))}") == "2"
    # A DateTime result always renders in UTC, as the service writes dates.
    assert ev("#{inTimeZone(myDateTime,'Asia/Tokyo')}") == MY_DATE_TIME
    # Days keep the local time of day across a DST change; hours are exact.
    start = "inTimeZone(makeDateTime(2011,3,12,20,0),'America/New_York')"
    assert ev(f"#{{format(plusDays({start},1),'dd HH:mm')}}") == "13 15:00"
    assert ev(f"#{{format(plusHours({start},24),'dd HH:mm')}}") == "13 16:00"


def test_joda_patterns() -> None:
    moment = datetime(2011, 5, 24, 17, 10, 5, 123000, tzinfo=UTC)
    assert format_joda(moment, "yyyy-MM-dd'T'HH:mm:ss.SSSZ") == "2011-05-24T17:10:05.123+0000"
    assert format_joda(moment, "yy/M/d h:mm a") == "11/5/24 5:10 PM"
    assert format_joda(moment, "EEE, dd MMM yyyy") == "Tue, 24 May 2011"
    assert format_joda(moment, "EEEE MMMM D e w") == "Tuesday May 144 2 21"
    assert format_joda(moment, "'o''clock' ''K k G C x") == "o'clock '5 17 AD 20 2011"
    with pytest.raises(ValueError, match="illegal pattern letter 'q'"):
        format_joda(moment, "q")


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("#{nope}", "object 'ShellOut' has no field 'nope'"),
        ("#{input.nope}", "object 'HourlyData' has no field 'nope'"),
        ("#{myNum.x}", "'myNum' is the text '5', not a reference to an object"),
        ("#{foo(1)}", "unknown function foo() at position 0 in #{foo(1)}"),
        ("#{Format(myDateTime,'x')}", "did you mean format()?"),
        ("#{format(myDateTime)}", "format() takes 2 arguments (DateTime, String), got 1"),
        ("#{plusDays('x',1)}", "argument 1 of plusDays() at position 0 must be a DateTime"),
        (
            "#{plusDays(myDateTime,1.5)}",
            "argument 2 of plusDays() at position 0 must be an integer",
        ),
        ("#{format(myDateTime,1)}", "must be a string, not the number 1"),
        ("#{makeDate(2011,2,30)}", "no such date or time"),
        ("#{inTimeZone(myDateTime,'Mars/Olympus')}", "unknown time zone 'Mars/Olympus'"),
        ("#{1 +}", "expected a value at the end in #{1 +}"),
        ("#{(1}", "expected ')' to close '('"),
        ("#{1 2}", "unexpected '2' at position 2"),
        ("#{'abc}", "unterminated string"),
        ("#{1", "'#{' without a closing '}'"),
        ("#{}", "empty expression"),
        ("#{1 $ 2}", "unexpected character '$' at position 2"),
        ("#{1/0}", "division by zero at position 1"),
        ("#{myNum - 'a'}", "'-' at position 6 needs numbers, not the text 'a'"),
        ("#{myDateTime - 1}", "needs numbers"),
        (
            "#{makeDate(2011,1,1) + 1}",
            "cannot add the DateTime 2011-01-01T00:00:00 and the number 1",
        ),
        ("#{9223372036854775807 + 1}", "integer overflow"),
        ("#{99999999999999999999}", "is too large"),
        ("#{10.0 ^ 400}", "no finite result"),
        ("#{self}", "field 'self' of object 'ShellOut' refers to itself"),
        ("#{ping}", "ShellOut.ping -> ShellOut.pong -> ShellOut.ping"),
        ("#{input.broken}", "in field 'broken' of object 'HourlyData': unknown function nope()"),
        ("#{plusYears(myDateTime, 9000)}", "outside the years 1 to 9999"),
    ],
)
def test_errors_say_what_and_where(expression: str, message: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        ev(expression)
    assert message in str(caught.value)


def test_unknown_object() -> None:
    with pytest.raises(ExpressionError, match="object 'Ghost' does not exist"):
        ev("#{x}", "Ghost")
    objects: dict[str, Fields] = {"A": {"next": [Ref("Ghost")]}}
    with pytest.raises(ExpressionError, match="object 'Ghost' does not exist"):
        ev("#{next.x}", "A", objects)


def test_every_documented_function_is_supported() -> None:
    documented = {
        "day", "dayOfYear", "firstOfMonth", "format", "hour", "makeDate", "makeDateTime",
        "midnight", "minusDays", "minusHours", "minusMinutes", "minusMonths", "minusWeeks",
        "minusYears", "minute", "month", "plusDays", "plusHours", "plusMinutes", "plusMonths",
        "plusWeeks", "plusYears", "sunday", "year", "yesterday", "inTimeZone",
    }  # fmt: skip
    assert documented <= set(FUNCTIONS)


@pytest.mark.parametrize(
    ("text", "period"),
    [
        ("10 Minutes", timedelta(minutes=10)),
        ("15 minutes", timedelta(minutes=15)),
        ("2 hours", timedelta(hours=2)),
        ("1 day", timedelta(days=1)),
        ("1 week", timedelta(weeks=1)),
        ("1 month", timedelta(days=30)),
        ("1 year", timedelta(days=365)),
        ("3 YEARS", timedelta(days=3 * 365)),
        (" 5   seconds ", timedelta(seconds=5)),
    ],
)
def test_parse_period(text: str, period: timedelta) -> None:
    assert parse_period(text) == period


@pytest.mark.parametrize("text", ["", "minutes", "0 minutes", "-1 day", "1.5 hours", "1 fortnight"])
def test_parse_period_rejects_nonsense(text: str) -> None:
    with pytest.raises(ExpressionError, match="invalid period"):
        parse_period(text)


def test_add_period_uses_calendar_months() -> None:
    jan31 = datetime(2011, 1, 31, 12, tzinfo=UTC)
    assert add_period(jan31, "1 month") == datetime(2011, 2, 28, 12, tzinfo=UTC)
    assert add_period(jan31, "1 month", 2) == datetime(2011, 3, 31, 12, tzinfo=UTC)
    assert add_period(jan31, "15 minutes", 4) == datetime(2011, 1, 31, 13, tzinfo=UTC)


# ---------------------------------------------------------------- hostile input


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("#{" + "(" * 10_000 + "1" + ")" * 10_000 + "}", "nested too deeply"),
        ("#{" + "f(" * 10_000 + "1" + ")" * 10_000 + "}", "nested too deeply"),
        ("#{" + "1+" * 1_000_000 + "1}", "too long"),
        ("#{" + "a." * 1_000_000 + "a}", "too long"),
        ("#{" + "2^" * 1_000_000 + "1}", "too long"),
        ("#{'" + "x" * 20_971_500, "unterminated string"),
        ("#{'" + "x" * 20_971_500 + "'", "without a closing"),
        ("#{" + " " * 20_971_500, "without a closing"),
        ("#{1}" * 200_000, "too many expressions"),
    ],
)
def test_hostile_input_fails_fast_with_a_clear_error(text: str, message: str) -> None:
    # CPU time, not wall-clock: other processes on a busy machine do not slow it down.
    started = time.process_time()
    with pytest.raises(ExpressionError, match=message):
        ev(text)
    assert time.process_time() - started < 10


def test_long_chains_within_the_limits_evaluate_without_recursion() -> None:
    assert ev("#{" + "1+" * 40_000 + "1}") == "40001"
    assert ev("#{" + "-" * 50_001 + "1}") == "-1"
    assert ev("#{'" + "x" * 20_000_000 + "'}") == "x" * 20_000_000


def test_exponential_fan_out_through_fields_is_bounded() -> None:
    objects: dict[str, dict[str, Sequence[str | Ref]]] = {"A": {"f0": ["x" * 5000]}}
    for level in range(1, 15):
        objects["A"][f"f{level}"] = [f"#{{f{level - 1}}}#{{f{level - 1}}}"]
    with pytest.raises(ExpressionError, match="too much text"):
        ev("#{f14}", "A", objects)


def test_deep_chains_of_fields_stop_with_a_clear_error() -> None:
    objects: dict[str, dict[str, Sequence[str | Ref]]] = {"A": {"f0": ["end"]}}
    for level in range(1, 500):
        objects["A"][f"f{level}"] = [f"#{{f{level - 1}}}"]
    with pytest.raises(ExpressionError, match="nested too deeply"):
        ev("#{f499}", "A", objects)
    assert ev("#{f5}", "A", objects) == "end"


_ALPHABET = st.sampled_from([*"#{}()'\".,+-*/^@ _aZ09", "#{", "myNum", "input", "format("])


@settings(max_examples=300, deadline=None)
@given(st.lists(_ALPHABET, max_size=60).map("".join))
def test_random_text_raises_nothing_but_expression_error(text: str) -> None:
    started = time.perf_counter()
    try:
        result = ev(text)
    except ExpressionError:
        pass
    else:
        assert isinstance(result, str)
    assert time.perf_counter() - started < 1


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_unicode_raises_nothing_but_expression_error(text: str) -> None:
    for candidate in (text, "#{" + text + "}"):
        with contextlib.suppress(ExpressionError):
            ev(candidate)


def test_now_is_accepted() -> None:
    now = datetime(2020, 1, 1, tzinfo=UTC)
    assert evaluate("#{1}", "ShellOut", lookup, now=now) == "1"
