"""settings.SHARDING is checked at start-up: a value that would break recovery or routing is an error."""
import pytest

from sharding.checks import check_sharding_settings


def ids(settings_value, settings):
    settings.SHARDING = settings_value
    return [error.id for error in check_sharding_settings(None)]


def test_the_project_settings_pass(settings):
    assert check_sharding_settings(None) == []


@pytest.mark.parametrize("prefix", ["mkt_live", "", "1abc", None, "x" * 17])
def test_a_gid_prefix_that_recovery_could_not_parse_is_an_error(prefix, settings):
    assert ids({**settings.SHARDING, "GID_PREFIX": prefix}, settings) == ["sharding.E002"]


@pytest.mark.parametrize("name,value", [("PLACEMENT_TTL", -1), ("FANOUT_TIMEOUT", "5"), ("LOGICAL_SHARDS", 0)])
def test_bad_numbers_are_errors(name, value, settings):
    assert ids({**settings.SHARDING, name: value}, settings) != []
