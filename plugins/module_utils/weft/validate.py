# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Argument checks shared by the netlink modules.

Each parser raises ValueError whose message starts with the option it is about, so a
module can fail with it unchanged before it writes anything.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re

_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


def ip_address(value, option):
    try:
        return ipaddress.ip_address(str(value).strip())
    except ValueError:
        raise ValueError("%s: %r is not an IP address" % (option, value)) from None


def ip_network(value, option):
    """A CIDR whose host bits are clear (what a route's destination must be)."""
    text = str(value).strip()
    if text == "default":
        text = "0.0.0.0/0"
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        raise ValueError("%s: %r is not a network in CIDR form (%s)" % (option, value, exc)) from None


def ip_interface(value, option):
    """An address with its prefix length, e.g. 100.96.1.0/32."""
    text = str(value).strip()
    if "/" not in text:
        raise ValueError("%s: %r needs a prefix length, e.g. %s/32" % (option, value, text))
    try:
        return ipaddress.ip_interface(text)
    except ValueError:
        raise ValueError("%s: %r is not an address in CIDR form" % (option, value)) from None


def mac_address(value, option, unicast=False):
    text = str(value).strip().lower().replace("-", ":")
    if not _MAC.match(text):
        raise ValueError("%s: %r is not a MAC address such as 0e:77:64:60:01:00" % (option, value))
    if unicast and int(text[:2], 16) & 1:
        raise ValueError("%s: %s is a multicast MAC; a device needs a unicast one" % (option, text))
    return text


def same_family(option, *addresses):
    versions = {a.version for a in addresses if a is not None}
    if len(versions) > 1:
        raise ValueError("%s: mixes IPv4 and IPv6 addresses (%s)"
                         % (option, ", ".join(str(a) for a in addresses if a is not None)))


def int_range(value, option, low, high):
    if not low <= value <= high:
        raise ValueError("%s: %d is out of range %d..%d" % (option, value, low, high))
    return value


def interface_name(value, option):
    if not value or len(value) > 15 or "/" in value or any(c.isspace() for c in value) \
            or value in (".", ".."):
        raise ValueError("%s: %r is not a valid interface name (1-15 characters, no '/' "
                         "or spaces)" % (option, value))
    return value


def whole_number(value, option, low=None, high=None):
    """An int from an int or a string of digits (YAML and JSON give either), in range."""
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        else:
            raise ValueError("%s: %r is not a whole number" % (option, value))
    if low is not None and value < low or high is not None and value > high:
        raise ValueError("%s: %d is out of range %s..%s" % (option, value, low, high))
    return value


def wireguard_key(value, option, secret=False):
    """A WireGuard key as wg prints it: the base64 of 32 bytes. A secret one (a private or
    pre-shared key) is never repeated in the message."""
    text = str(value).strip() if value is not None else ""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32 or len(text) != 44:
        raise ValueError("%s: %s is not a WireGuard key (the base64 of 32 bytes, 44 "
                         "characters, as wg genkey, wg pubkey and wg genpsk print them)"
                         % (option, "the value given" if secret else repr(value)))
    return text


def preshared_key(value, option):
    """The network's pre-shared key as given (stripped), or None when there is none."""
    text = (value or "").strip()
    return wireguard_key(text, option, secret=True) if text else None


_CNI_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$")


def cni_network_name(value, option):
    """A CNI network name as libcni accepts it (letters, digits, '_', '.', '-')."""
    if not isinstance(value, str) or not _CNI_NAME.match(value):
        raise ValueError("%s: %r is not a CNI network name (a letter or digit, then letters, "
                         "digits, '_', '.' or '-')" % (option, value))
    return value
