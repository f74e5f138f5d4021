"""Hosts of the tests' own, each a network namespace, joined by one bridge: cut silently and healed.

Every host (a Galera node, an app server) is a namespace with one veth to a bridge that lives in a namespace
of its own, and one address in a private /24 that exists only inside these namespaces; nothing here is
routed to or from the machine's own network. ``cut(a, b)`` drops every frame between two hosts without a
word (what a partition looks like, unlike a refused connection): each side gets a permanent neighbour
entry for the other's address with a MAC nobody has (this kernel has neither iptables nor netem), so an
established TCP connection simply hears nothing. ``heal`` removes the entries. ``close()`` deletes every
namespace (and with them their veths); run it in a fixture's teardown even when the test failed.

Needs root and iproute2 (``ip netns``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

NOBODY_MAC = "02:00:00:00:00:01"  # locally administered, on no interface: frames sent there are lost


def available() -> str | None:
    """Why namespaces cannot be made here, or None when they can."""
    if not shutil.which("ip"):
        return "no ip (iproute2) for network namespaces"
    if os.geteuid() != 0:
        return "network namespaces need root"
    return None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@dataclass(frozen=True)
class Host:
    name: str
    netns: str
    address: str

    def command(self, *argv: str) -> list[str]:
        """``argv`` run inside this host's namespace."""
        return ["ip", "netns", "exec", self.netns, *argv]


class Network:
    def __init__(self, subnet: str = "10.231.7") -> None:
        self.subnet = subnet
        self.tag = f"ob{os.getpid()}"  # unique per test process: engineers' runs side by side do not meet
        self.bridge = f"{self.tag}-br"
        self.hosts: list[Host] = []
        self._cuts: set[tuple[str, str]] = set()
        _ip("netns", "add", self.bridge)
        try:
            _ip("-n", self.bridge, "link", "add", "br0", "type", "bridge")
            _ip("-n", self.bridge, "link", "set", "br0", "up")
        except BaseException:
            self.close()
            raise

    def add(self, name: str) -> Host:
        host = Host(name, f"{self.tag}-{name}", f"{self.subnet}.{len(self.hosts) + 1}")
        _ip("netns", "add", host.netns)
        self.hosts.append(host)
        # the pair is made inside the bridge's namespace and one end moved: no name ever appears outside
        _ip("-n", self.bridge, "link", "add", name, "type", "veth", "peer", "name", "eth0", "netns", host.netns)
        _ip("-n", self.bridge, "link", "set", name, "master", "br0", "up")
        _ip("-n", host.netns, "addr", "add", f"{host.address}/24", "dev", "eth0")
        _ip("-n", host.netns, "link", "set", "eth0", "up")
        _ip("-n", host.netns, "link", "set", "lo", "up")
        return host

    def cut(self, a: Host, b: Host) -> None:
        """Drop everything between ``a`` and ``b`` silently, both ways."""
        for here, there in ((a, b), (b, a)):
            _ip("-n", here.netns, "neigh", "replace", there.address, "lladdr", NOBODY_MAC, "nud", "permanent",
                "dev", "eth0")
        self._cuts.add((a.name, b.name))

    def heal(self, a: Host, b: Host) -> None:
        for here, there in ((a, b), (b, a)):
            subprocess.run(["ip", "-n", here.netns, "neigh", "del", there.address, "dev", "eth0"],
                           capture_output=True, timeout=10)
        self._cuts.discard((a.name, b.name))

    def close(self) -> None:
        for host in self.hosts:
            subprocess.run(["ip", "netns", "del", host.netns], capture_output=True, timeout=10)
        subprocess.run(["ip", "netns", "del", self.bridge], capture_output=True, timeout=10)
        self.hosts.clear()
