"""The Redis URL forms crossfill connects with: Sentinel's, read without a network."""
from __future__ import annotations

import pytest

from fulfillment.store import SENTINEL_PORT, SentinelURL, is_sentinel, parse_sentinel_url


def test_celerys_sentinel_form_names_every_sentinel_and_the_masters_password_and_db() -> None:
    url = "sentinel://:p%40ss@s1:26379/3;sentinel://s2:26380;sentinel://s3"

    assert parse_sentinel_url(url) == SentinelURL(sentinels=(("s1", 26379), ("s2", 26380), ("s3", SENTINEL_PORT)),
                                                  password="p@ss", db=3)


@pytest.mark.parametrize("url", ["sentinel://s1:26379", "SENTINEL://s1", " sentinel://s1;sentinel://s2"])
def test_a_sentinel_url_is_told_apart(url: str) -> None:
    assert is_sentinel(url)


@pytest.mark.parametrize("url", ["redis://s1:6379/0", "rediss://s1", "unix:///tmp/redis.sock"])
def test_a_server_url_is_not_a_sentinel_url(url: str) -> None:
    assert not is_sentinel(url)


@pytest.mark.parametrize("url", ["sentinel://", "sentinel://s1;redis://s2", "sentinel://s1:port",
                                 "sentinel://s1/zero", "sentinel://s1/-1", "sentinel://s1;;sentinel://s2"])
def test_a_malformed_sentinel_url_is_a_value_error(url: str) -> None:
    with pytest.raises(ValueError):
        parse_sentinel_url(url)
