"""A Tryton account's identity (the namespace of its ids, hashed into every entry's key): one
database on one server, however its address is written."""

from __future__ import annotations

import pytest

from connectors.errors import ErrorCode, InvsyncError
from connectors.providers.tryton.source import TrytonSource
from connectors.providers.tryton.target import TrytonTarget


def identity(url: str, database: str = "books", **settings: str) -> str:
    return TrytonSource.account_identity({"url": url, "database": database, **settings})


@pytest.mark.parametrize(
    "spelling",
    [
        "http://127.0.0.1:8000/",
        "http://127.0.0.1:8000",
        "http://127.0.0.1:8000//",
        "HTTP://LOCALHOST:8000/",
        "http://localhost:8000",
        "http://[::1]:8000/",
        "http://127.0.1.1:8000/",
        " http://localhost:8000/ ",
    ],
)
def test_spellings_of_one_local_server_are_one_account(spelling):
    assert identity(spelling) == identity("http://localhost:8000/") == "tryton|localhost:8000|books"


def test_the_default_port_is_written_out_and_the_scheme_does_not_count():
    assert identity("https://erp.example.com/") == identity("https://ERP.example.com:443")
    assert identity("http://erp.example.com/") == identity("http://erp.example.com:80/")
    assert identity("http://erp.example.com:443/") == identity("https://erp.example.com/")


def test_another_server_database_port_or_path_is_another_account():
    base = identity("https://erp.example.com/")
    assert identity("https://erp2.example.com/") != base
    assert identity("https://erp.example.com/", database="books2") != base
    assert identity("https://erp.example.com:8443/") != base
    assert identity("https://erp.example.com/tryton/") != base


def test_a_name_and_an_address_of_one_server_stay_two_accounts():
    # No DNS lookup: its answer depends on the network and the worker asking.
    assert identity("http://10.0.0.5:8000/") != identity("http://erp.internal:8000/")


def test_company_transport_settings_and_credentials_do_not_change_it():
    base = identity("https://erp.example.com/")
    assert identity("https://erp.example.com/", company="2", timeout="5", rate_limit="6/1") == base
    with_login = identity("https://admin:s3cret@erp.example.com/")
    assert with_login == base and "s3cret" not in with_login and "admin" not in with_login


def test_source_and_target_connections_to_one_database_name_one_account():
    settings = {"url": "http://localhost:8000/", "database": "books"}
    assert TrytonTarget.account_identity(settings) == TrytonSource.account_identity(settings)


@pytest.mark.parametrize(
    "settings",
    [{}, {"url": "http://erp/"}, {"database": "books"}, {"url": "not a url", "database": "x"}],
)
def test_settings_naming_no_account_are_a_configuration_error(settings):
    with pytest.raises(InvsyncError) as error:
        TrytonSource.account_identity(settings)
    assert error.value.code == ErrorCode.CONFIGURATION_INCOMPLETE
