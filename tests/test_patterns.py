"""Pattern parsing, formatting and derived quantities."""

import pytest

from composer_automl.patterns import PRIMITIVES, Pattern, PatternError, register_primitive


@pytest.mark.parametrize(
    "text, compact, run_length",
    [
        ("AMMAMM", "AMMAMM", "1A+2M+1A+2M"),
        ("1A+2M+1A+2M", "AMMAMM", "1A+2M+1A+2M"),
        ("2A+4M", "AAMMMM", "2A+4M"),
        ("2A+5M+2A+3M+1A+3M", "AAMMMMMAAMMMAMMM", "2A+5M+2A+3M+1A+3M"),
        ("ammamm", "AMMAMM", "1A+2M+1A+2M"),
        (" A M ", "AM", "1A+1M"),
        ("M", "M", "1M"),
    ],
)
def test_parse_and_format_round_trip(text, compact, run_length):
    """Both spellings parse to the same layers and format back to themselves."""
    pattern = Pattern.parse(text)
    assert str(pattern) == compact
    assert pattern.run_length() == run_length
    assert Pattern.parse(str(pattern)) == pattern
    assert Pattern.parse(pattern.run_length()) == pattern


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty pattern"),
        ("   ", "empty pattern"),
        ("AMX", "unknown layer kind"),
        ("2A+3Q", "unknown layer kind"),
        ("2A+", "malformed run-length"),
        ("A+2M", "malformed run-length"),
        ("2AM", "malformed run-length"),
        ("0A+2M", "at least once"),
        ("2A++2M", "malformed run-length"),
        ("-1A", "malformed run-length"),
    ],
)
def test_malformed_patterns_raise_one_clear_error(text, message):
    """Every malformed string raises PatternError with a message that says what is wrong."""
    with pytest.raises(PatternError, match=message):
        Pattern.parse(text)


def test_unknown_kind_error_lists_allowed_kinds():
    """The error for an unknown symbol names the registered kinds."""
    with pytest.raises(PatternError, match=r"allowed: \['A', 'M'"):
        Pattern.parse("AZ")


def test_non_string_is_rejected():
    """A non-string input is an error, not a silent conversion."""
    with pytest.raises(PatternError, match="must be a string"):
        Pattern.parse(123)


def test_counts_runs_and_attention_fraction():
    """Counts, runs and the attention fraction follow the layers."""
    pattern = Pattern.parse("2A+5M+2A+3M+1A+3M")
    assert len(pattern) == 16
    assert pattern.counts() == {"A": 5, "M": 11}
    assert pattern.runs() == [("A", 2), ("M", 5), ("A", 2), ("M", 3), ("A", 1), ("M", 3)]
    assert pattern.attention_fraction == pytest.approx(5 / 16)
    assert Pattern.parse("MMM").attention_fraction == 0.0


def test_sequence_operations_return_patterns():
    """Slicing, concatenation and repetition give Patterns; indexing gives a kind."""
    pattern = Pattern.parse("AMMAMM")
    assert pattern[0] == "A"
    assert pattern[1:3] == Pattern.parse("MM")
    assert pattern + "AA" == Pattern.parse("AMMAMMAA")
    assert Pattern.parse("AM") * 3 == Pattern.parse("AMAMAM")
    assert list(pattern) == list("AMMAMM")


def test_patterns_are_immutable_and_hashable():
    """Patterns can be dict keys and cannot be changed in place."""
    pattern = Pattern.parse("AM")
    assert {pattern: 1}[Pattern.parse("1A+1M")] == 1
    with pytest.raises(AttributeError):
        pattern.layers = ("M",)


def test_registry_rejects_bad_or_duplicate_symbols():
    """Registering a lower-case, multi-letter or existing symbol fails."""
    for symbol in ("a", "AB", "1"):
        with pytest.raises(PatternError, match="one upper-case letter"):
            register_primitive(symbol, "x", "x")
    with pytest.raises(PatternError, match="already registered"):
        register_primitive("A", "again", "dup")
    assert list(PRIMITIVES) == ["A", "M"]
