# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A device's TX checksum offload, through the ethtool ioctl (what `ethtool -K <dev> tx`
reads and sets), from the standard library: pyroute2 has no ethtool support in 0.7.

Flannel users turn it off on flannel.1 by hand where a NIC or hypervisor corrupts the
inner checksums of VXLAN packets (flannel-io/flannel#1279, #2152); weft keeps it set.
"""

from __future__ import annotations

import array
import fcntl
import socket
import struct

SIOCETHTOOL = 0x8946
ETHTOOL_GTXCSUM = 0x16
ETHTOOL_STXCSUM = 0x17
IFNAMSIZ = 16


def _ioctl(name, command, value=0) -> int:
    # struct ethtool_value {u32 cmd; u32 data}, pointed to by struct ifreq's ifr_data.
    data = array.array("B", struct.pack("II", command, value))
    address, dummy = data.buffer_info()
    request = struct.pack("%dsP" % IFNAMSIZ, name.encode(), address)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        fcntl.ioctl(sock.fileno(), SIOCETHTOOL, request)
    return struct.unpack("II", data.tobytes())[1]


def tx_checksum(name) -> bool:
    """Whether the device offloads TX checksums (OSError when it has no such device)."""
    return bool(_ioctl(name, ETHTOOL_GTXCSUM))


def set_tx_checksum(name, on) -> None:
    _ioctl(name, ETHTOOL_STXCSUM, int(bool(on)))
