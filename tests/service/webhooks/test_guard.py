"""The SSRF guard: only public addresses, unless allow-listed; checked again at every delivery."""

from __future__ import annotations

import ipaddress

import httpx
import pytest

from service.config import Settings
from service.webhooks import WebhookUrlRefused, attempt_delivery, check_webhook_url, embedded_ipv4


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


# --- IPv6 addresses that carry an IPv4 address -------------------------------------------------------------

EMBEDDED_PRIVATE = {
    "mapped-metadata": "::ffff:169.254.169.254",
    "mapped-hex": "::ffff:a00:5",
    "translated": "::ffff:0:7f00:1",
    "translated-rfc1918": "::ffff:0:10.0.0.5",
    "compatible-loopback": "::127.0.0.1",
    "compatible-rfc1918": "::c0a8:101",
    "nat64-loopback": "64:ff9b::127.0.0.1",
    "nat64-metadata": "64:ff9b::a9fe:a9fe",
    "nat64-local-use": "64:ff9b:1::5db8:d822",
    "6to4-loopback": "2002:7f00:1::1",
    "6to4-rfc1918": "2002:c0a8:101::1",
    "6to4-cgnat": "2002:6464:64c8::",
    "teredo-private-client": "2001:0:5db8:d822:0:0:f5ff:fffa",
    "teredo-private-server": "2001:0:a00:5:0:0:a247:cbdd",
}


@pytest.mark.parametrize("address", list(EMBEDDED_PRIVATE.values()), ids=list(EMBEDDED_PRIVATE))
def test_ipv6_forms_embedding_a_private_ipv4_are_refused(address: str) -> None:
    with pytest.raises(WebhookUrlRefused) as literal:
        check_webhook_url(f"http://[{address}]:8080/hook")
    assert literal.value.reason == "non_public_address"
    with pytest.raises(WebhookUrlRefused) as resolved:  # the same address from DNS (an AAAA record)
        check_webhook_url("https://hooks.example/hook", resolve=_resolver("93.184.216.34", address))
    assert resolved.value.reason == "non_public_address"


@pytest.mark.parametrize(
    "address",
    ["64:ff9b::93.184.216.34", "2002:5db8:d822::1", "2606:4700:4700::1111", "::ffff:93.184.216.34"],
    ids=["nat64-public", "6to4-public", "plain-global-v6", "mapped-public"],
)
def test_ipv6_forms_embedding_a_public_ipv4_pass(address: str) -> None:
    assert str(check_webhook_url(f"https://[{address}]/hook").address) == str(ipaddress.ip_address(address))


def test_embedded_ipv4_reads_every_form() -> None:
    assert [str(a) for a in embedded_ipv4(ipaddress.IPv6Address("2002:c0a8:101::1"))] == ["192.168.1.1"]
    assert [str(a) for a in embedded_ipv4(ipaddress.IPv6Address("64:ff9b::a00:1"))] == ["10.0.0.1"]
    assert [str(a) for a in embedded_ipv4(ipaddress.IPv6Address("::ffff:0:a00:1"))] == ["10.0.0.1"]
    server, client = embedded_ipv4(ipaddress.IPv6Address("2001:0:4136:e378:8000:63bf:3fff:fdd2"))
    assert (str(server), str(client)) == ("65.54.227.120", "192.0.2.45")
    assert embedded_ipv4(ipaddress.IPv6Address("2606:4700:4700::1111")) == []


def test_delivery_checks_the_embedded_forms_again() -> None:
    # Accepted at submission (public then), answered later by DNS with a NAT64 form of the metadata address.
    answers = iter([["93.184.216.34"], ["64:ff9b::169.254.169.254"]])
    resolve = lambda host, port: next(answers)  # noqa: E731
    check_webhook_url("https://hooks.example/x", resolve=resolve)
    with httpx.Client() as client:
        outcome = attempt_delivery(
            client,
            "https://hooks.example/x",
            {"id": "e", "type": "job.succeeded"},
            secret="s",
            allow=(),
            resolve=resolve,
        )
    assert (outcome.delivered, outcome.retry, outcome.error) == (False, False, "webhook_url_refused:non_public_address")


def test_the_package_keeps_its_old_imports() -> None:
    import service.webhooks as webhooks
    from service.webhooks import deliverer, guard, signing

    assert webhooks.check_webhook_url is guard.check_webhook_url
    assert webhooks.WebhookDeliverer is deliverer.WebhookDeliverer
    assert webhooks.verify_signature is signing.verify_signature
