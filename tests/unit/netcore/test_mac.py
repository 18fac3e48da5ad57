"""Derived and user-given MAC addresses."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest

from netcore.errors import InvalidArgument
from netcore.ipam.mac import mac_from_ipv4, validate_mac


@pytest.mark.parametrize(
    ("ip", "mac"),
    [
        ("172.17.0.2", "02:42:ac:11:00:02"),
        ("10.0.0.1", "02:42:0a:00:00:01"),
        ("192.168.255.254", "02:42:c0:a8:ff:fe"),
    ],
)
def test_mac_from_ipv4(ip: str, mac: str) -> None:
    assert mac_from_ipv4(IPv4Address(ip)) == mac
    assert mac_from_ipv4(ip) == mac


def test_derived_mac_is_valid_unicast_local() -> None:
    mac = mac_from_ipv4("172.17.0.2")
    assert validate_mac(mac) == mac
    assert int(mac[:2], 16) & 0x02  # locally administered


def test_mac_from_ipv4_refuses_ipv6() -> None:
    with pytest.raises(ValueError):
        mac_from_ipv4("fd00::1")


@pytest.mark.parametrize(
    "value",
    ["02:42:AC:11:00:02", "02-42-ac-11-00-02", "0242.ac11.0002", "02:42:ac:11:00:02"],
)
def test_validate_mac_normalises(value: str) -> None:
    assert validate_mac(value) == "02:42:ac:11:00:02"


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("01:00:5e:00:00:01", "multicast"),
        ("ff:ff:ff:ff:ff:ff", "multicast"),
        ("03:42:ac:11:00:02", "multicast"),
        ("00:00:00:00:00:00", "all-zero"),
        ("02:42:ac:11:00", "not a MAC address"),
        ("02:42:ac:11:00:02:03", "not a MAC address"),
        ("02:42-ac:11:00:02", "not a MAC address"),
        ("02:42:ac:11:00:0g", "not a MAC address"),
        ("2:42:ac:11:0:2", "not a MAC address"),
        (" 02:42:ac:11:00:02", "not a MAC address"),
        ("02:42:ac:11:00:02\n", "not a MAC address"),
        ("", "not a MAC address"),
        (None, "not a MAC address"),
    ],
)
def test_validate_mac_refuses(value: object, fragment: str) -> None:
    with pytest.raises(InvalidArgument, match=fragment) as info:
        validate_mac(value)
    assert info.value.field == "MacAddress"


def test_validate_mac_names_the_given_field() -> None:
    with pytest.raises(InvalidArgument) as info:
        validate_mac("01:00:00:00:00:00", field="EndpointsConfig.net1.MacAddress")
    assert info.value.field == "EndpointsConfig.net1.MacAddress"
    assert str(info.value).startswith("EndpointsConfig.net1.MacAddress: ")
