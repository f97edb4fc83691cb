"""Database URLs: passwords masked (userinfo and query), malformed URLs refused cleanly."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest

from conftest import gwconfig_in_process
from gwconfig.db.urls import check_url, error_detail, mask_url, scrub
from gwconfig.errors import ConfigurationError

#: generated per run; never committed
PW = "pw" + secrets.token_hex(8)

# Every way a URL can carry a password outside the userinfo (key, as written in the URL).
QUERY_KEYS = [
    "password",
    "passwd",
    "pwd",
    "sslpassword",
    "PASSWORD",
    "PassWord",
    "pass%77ord",  # percent-encoded key: SQLAlchemy and the drivers decode it
    "client_secret",
    "auth_token",
]


@pytest.mark.parametrize("key", QUERY_KEYS)
@pytest.mark.parametrize("first", [True, False], ids=["?key", "&key"])
def test_query_passwords_are_masked(key: str, first: bool) -> None:
    query = f"{key}={PW}" if first else f"sslmode=require&{key}={PW}&application_name=x"
    url = f"postgresql+psycopg://u@db.example.com:5432/gw?{query}"
    masked = mask_url(url)
    assert PW not in masked
    assert f"{key}=***" in masked
    assert masked.startswith("postgresql+psycopg://u@db.example.com:5432/gw?")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (f"postgresql://u:{PW}@h/db", "postgresql://u:***@h/db"),
        (f"postgresql://u:{PW}@h/db?password={PW}", "postgresql://u:***@h/db?password=***"),
        # an unencoded '@' (SQLAlchemy ends the password at the first one): mask up to the last
        (f"postgresql://u:{PW}@{PW}@h:5432/db", "postgresql://u:***@h:5432/db"),
        (f"postgresql://u:{PW}/x?y@h/db", "postgresql://u:***@h/db"),
        (f"postgresql://u:{PW}@[::1/x", "postgresql://u:***@[::1/x"),
        (f"postgresql://u@h/db?password={PW.upper()}%21", "postgresql://u@h/db?password=***"),
        ("postgresql://u@h/db?sslmode=require", "postgresql://u@h/db?sslmode=require"),
        ("sqlite:///x.db", "sqlite:///x.db"),
        (f"garbage {PW}", "(not a URL)"),
    ],
    # ids without the run's password, so that every xdist worker collects the same test names
    ids=lambda value: value.replace(PW, "PW").replace(PW.upper(), "PW"),
)
def test_mask_url(url: str, expected: str) -> None:
    assert mask_url(url) == expected


def test_driver_messages_are_scrubbed_of_every_form_of_the_password() -> None:
    encoded = PW[:4] + "%" + format(ord(PW[4]), "02X") + PW[5:]
    url = f"postgresql://u:{encoded}@h/db?sslpassword={PW}x&pwd={PW}y"
    exc = Exception(f'invalid dsn: "password={PW} sslpassword={PW}x pwd={PW}y"\nmore')
    detail = error_detail(exc, url)
    assert PW not in detail and encoded not in detail
    assert detail.startswith("invalid dsn")
    assert scrub(f"{encoded} and {PW}", url) == "*** and ***"


# Malformed or unusable URLs: (kind, URL with {pw}); every one is exit 1 without the password.
BAD_URLS = [
    ("ipv6 unclosed", "postgresql+psycopg://u:{pw}@[::1/x"),
    ("port too large", "postgresql+psycopg://u:{pw}@127.0.0.1:99999/x"),
    ("port not a number", "postgresql+psycopg://u:{pw}@127.0.0.1:abc/x"),
    ("port zero", "mysql+pymysql://u:{pw}@127.0.0.1:0/x"),
    ("unknown scheme", "oracle://u:{pw}@127.0.0.1/x"),
    ("no scheme", "u:{pw}@127.0.0.1/x"),
    ("garbage", "not a url {pw}"),
    ("unencoded @ in password", "postgresql://u:{pw}@{pw}@127.0.0.1:5432/x"),
    ("sqlite with a host", "sqlite://u:{pw}@host/x.db"),
    ("trailing newline", "postgresql://u:{pw}@127.0.0.1:5432/x\nmore"),
    ("empty host", "mysql+pymysql://nobody_gw:{pw}@:1/x"),
    ("refused, userinfo", "postgresql+psycopg://u:{pw}@127.0.0.1:1/x"),
    ("refused, query password", "postgresql+psycopg://u@127.0.0.1:1/x?password={pw}"),
    ("refused, query sslpassword", "mysql+pymysql://u@127.0.0.1:1/x?sslpassword={pw}&a=1"),
    ("refused, encoded key", "postgresql://u@127.0.0.1:1/x?pass%77ord={pw}&pwd={pw}"),
    ("bad option", "postgresql://u@127.0.0.1:1/x?passwd={pw}&bogus=1"),
]


@pytest.mark.slow
@pytest.mark.parametrize("via", ["option", "environment"])
@pytest.mark.parametrize(("kind", "template"), BAD_URLS, ids=[k for k, _ in BAD_URLS])
def test_bad_database_urls_are_clear_errors_without_the_password(
    kind: str, template: str, via: str, tmp_path: Path, fernet_key: str
) -> None:
    url = template.format(pw=PW)
    (tmp_path / "providers.d").mkdir()
    (tmp_path / "providers.d" / "mock.yaml").write_text(
        "apiVersion: gwconfig/v1\nkind: Provider\nprovider_id: mock\nprovider_type: mock\n"
        "models:\n  - model_id: echo\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("GWCONFIG_")}
    env["GWCONFIG_ENCRYPTION_KEY"] = fernet_key
    # plan reads through the direct DBAPI reader first; apply and db current through SQLAlchemy
    commands = [["plan"], ["apply", "--auto-approve"], ["db", "current"]]
    if via == "option":
        commands = [[*c, "--database-url", url] for c in commands]
    else:  # the same code resolves both; one command of each path is enough
        env["GWCONFIG_DATABASE_URL"] = url
        commands = commands[:1] if BAD_URLS.index((kind, template)) % 2 else commands[1:2]
    for command in commands:
        done = gwconfig_in_process(command, tmp_path, env)
        out = done.stdout + done.stderr
        assert done.returncode == 1, (command, out)
        assert PW not in out, (command, out)
        assert out.startswith("error: "), (command, out)
        assert "internal error" not in out and "Traceback" not in out
    assert not (tmp_path / ".gwconfig").exists()


@pytest.mark.parametrize(
    "url",
    [
        "sqlite://",
        "sqlite:///:memory:",
        "sqlite:///relative/gw.db",
        "postgresql://u:p%40ss@db.example.com/gw?sslmode=require",
        "postgres://u@[::1]:5433/gw",
        "mysql+pymysql://u:@host:3307/db?charset=utf8mb4",
        "postgresql+psycopg://u@/gw?host=/var/run/postgresql",
        "postgresql+psycopg://u@host:/gw",
    ],
)
def test_good_urls_pass_the_check(url: str) -> None:
    assert check_url(url) == url


def test_a_malformed_url_error_names_no_part_of_the_password() -> None:
    with pytest.raises(ConfigurationError) as info:
        check_url(f"postgresql://u:{PW}@{PW[:6]}:{PW[6:]}@host/db")
    assert PW[:6] not in str(info.value) and PW[6:] not in str(info.value)
