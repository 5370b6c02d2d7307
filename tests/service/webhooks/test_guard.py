"""The SSRF guard: only public addresses, unless allow-listed; checked again at every delivery."""

from __future__ import annotations

import pytest

from service.config import Settings
from service.webhooks import WebhookUrlRefused, check_webhook_url


def _resolver(*addresses: str):  # type: ignore[no-untyped-def]
    return lambda host, port: list(addresses)


@pytest.mark.parametrize(
    ("url", "addresses", "reason"),
    [
        ("http://127.0.0.1/x", (), "non_public_address"),
        ("http://[::1]/x", (), "non_public_address"),
        ("http://[::ffff:127.0.0.1]/x", (), "non_public_address"),
        ("http://10.0.0.5/x", (), "non_public_address"),
        ("http://192.168.1.1/x", (), "non_public_address"),
        ("http://172.16.0.1/x", (), "non_public_address"),
        ("http://169.254.169.254/latest/meta-data/", (), "non_public_address"),
        ("http://100.100.100.200/x", (), "non_public_address"),
        ("http://[fd00:ec2::254]/x", (), "non_public_address"),
        ("http://[fe80::1]/x", (), "non_public_address"),
        ("http://0.0.0.0/x", (), "non_public_address"),
        ("http://224.0.0.1/x", (), "non_public_address"),
        ("http://hooks.example/x", ("93.184.216.34", "10.0.0.7"), "non_public_address"),
        ("http://hooks.example/x", (), "unresolvable"),
        ("ftp://hooks.example/x", ("93.184.216.34",), "scheme"),
        ("file:///etc/passwd", (), "scheme"),
        ("https://user:pw@hooks.example/x", ("93.184.216.34",), "credentials"),
    ],
    ids=[
        "loopback",
        "ipv6-loopback",
        "mapped-loopback",
        "rfc1918-10",
        "rfc1918-192",
        "rfc1918-172",
        "aws-metadata",
        "alibaba-metadata-cgnat",
        "aws-metadata-ipv6",
        "ipv6-link-local",
        "unspecified",
        "multicast",
        "one-private-answer-of-two",
        "no-answer",
        "ftp",
        "file",
        "credentials",
    ],
)
def test_refused(url: str, addresses: tuple[str, ...], reason: str) -> None:
    with pytest.raises(WebhookUrlRefused) as caught:
        check_webhook_url(url, resolve=_resolver(*addresses))
    assert caught.value.reason == reason and caught.value.code == "webhook_url_refused"


def test_public_address_passes_and_is_the_one_connected_to() -> None:
    target = check_webhook_url("https://hooks.example:8443/in?x=1", resolve=_resolver("93.184.216.34"))
    assert (target.host, target.port, str(target.address)) == ("hooks.example", 8443, "93.184.216.34")


@pytest.mark.parametrize(
    ("allow", "url", "addresses"),
    [
        (["127.0.0.1"], "http://127.0.0.1:9000/x", ()),
        (["10.0.0.0/8"], "http://hooks.corp/x", ("10.2.3.4",)),
        (["hooks.corp"], "http://HOOKS.corp./x", ("10.2.3.4",)),
    ],
    ids=["address", "cidr", "hostname"],
)
def test_allow_list(allow: list[str], url: str, addresses: tuple[str, ...]) -> None:
    assert check_webhook_url(url, allow, resolve=_resolver(*addresses)).address is not None


def test_allow_list_is_not_wider_than_written() -> None:
    with pytest.raises(WebhookUrlRefused):
        check_webhook_url("http://10.9.9.9/x", ["10.0.0.0/16"])
    with pytest.raises(WebhookUrlRefused):
        check_webhook_url("http://other.corp/x", ["hooks.corp"], resolve=_resolver("10.2.3.4"))


def test_settings_read_the_allow_list_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ABSTRACTOR_WEBHOOK_ALLOW_HOSTS", "127.0.0.1, hooks.corp,10.0.0.0/8")
    assert Settings(_env_file=None).webhook_allow_hosts == ["127.0.0.1", "hooks.corp", "10.0.0.0/8"]  # type: ignore[call-arg]
    monkeypatch.setenv("ABSTRACTOR_WEBHOOK_ALLOW_HOSTS", '["::1"]')
    assert Settings(_env_file=None).webhook_allow_hosts == ["::1"]  # type: ignore[call-arg]


def test_a_placeholder_secret_is_refused_outside_development() -> None:
    with pytest.raises(ValueError, match="WEBHOOK_SECRET"):
        Settings(_env_file=None, environment="production", webhook_secret="changeme")  # type: ignore[call-arg]
    assert Settings(_env_file=None, environment="development", webhook_secret="dev").webhook_secret is not None  # type: ignore[call-arg]
