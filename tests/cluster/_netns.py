"""Several "hosts" on one machine: network namespaces, each with its own IP address and hostname,
joined by a bridge in the root namespace that carries the head's address. Needs root and iproute2.

A process runs "on" a host through `command_on`: `ip netns exec` puts it in the namespace (and
bind-mounts /etc/netns/NS/hosts over /etc/hosts, so every host's name resolves to its address as on
a real cluster; gloo binds to the address its hostname resolves to; and NS/resolv.conf, so a name
the hosts file lacks fails at once) and `unshare --uts` gives it the
host's name. /tmp, /dev/shm and every other folder stay shared, as storage on NFS would be.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Net", "command_on", "create", "destroy", "namespaces", "pids_on", "unavailable_reason"]

ETC_NETNS = Path("/etc/netns")


@dataclass(frozen=True)
class Net:
    """The names and addresses of one slot. Slot 0: bridge llmos-br0 with 10.77.0.1 (the head), hosts
    llmos-n1 = 10.77.0.2, llmos-n2 = 10.77.0.3, ... Slot k: llmos-br{k}, 10.77.k.1, llmos{k}-n1, ... so
    two test runs at once (each holds the lock of its slot) never share a name or an address."""

    slot: int

    @property
    def bridge(self) -> str:
        return f"llmos-br{self.slot}"

    @property
    def head_ip(self) -> str:
        return f"10.77.{self.slot}.1"

    @property
    def prefix(self) -> str:
        return "llmos-" if self.slot == 0 else f"llmos{self.slot}-"

    def namespace(self, name: str) -> str:
        return self.prefix + name

    def ip(self, index: int) -> str:
        """The address of the index-th host (0-based): .2, .3, ..."""
        return f"10.77.{self.slot}.{index + 2}"


def _ip(*args: str, gone_ok: bool = False) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if gone_ok and "Cannot find device" in result.stderr:  # the kernel removed it meanwhile
        return
    if result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip()}")


def unavailable_reason() -> str | None:
    """Why namespaces cannot be used here, or None when they can (root, iproute2, unshare, and the
    kernel lets us add one)."""
    if os.geteuid() != 0:
        return "not root"
    for tool in ("ip", "unshare"):
        if shutil.which(tool) is None:
            return f"no `{tool}` command"
    probe = f"llmos-probe{os.getpid()}"
    try:
        _ip("netns", "add", probe)
        _ip("netns", "del", probe)
    except (RuntimeError, OSError) as e:
        return f"cannot add a network namespace: {e}"
    return None


def namespaces(net: Net) -> list[str]:
    """The slot's namespaces that exist now."""
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=30).stdout
    return [name for line in listing.splitlines() if (name := line.split(" ", 1)[0]).startswith(net.prefix)]


def destroy(net: Net) -> None:
    """Remove every namespace, hosts file and the bridge of this slot (leftovers of a crashed run too).
    Deleting a namespace deletes its end of each veth pair and with it the other end."""
    for namespace in namespaces(net):
        _ip("netns", "del", namespace)
    for stale in ETC_NETNS.glob(net.prefix + "*") if ETC_NETNS.is_dir() else ():
        shutil.rmtree(stale, ignore_errors=True)
    # A namespace outlives its name while a process still holds it, and its veth pair with it.
    for link in Path("/sys/class/net").iterdir():
        if link.name == net.bridge or (link.name.startswith(net.prefix) and link.name.endswith("-h")):
            _ip("link", "del", link.name, gone_ok=True)


def create(net: Net, names: list[str]) -> dict[str, str]:
    """The bridge with the head's address, then one namespace per name: a veth pair into the bridge, the
    host's address, loopback up, a default route through the head, and a hosts file naming every host.
    Returns name -> address."""
    _ip("link", "add", net.bridge, "type", "bridge")
    _ip("addr", "add", f"{net.head_ip}/24", "dev", net.bridge)
    _ip("link", "set", net.bridge, "up")
    addresses = {name: net.ip(i) for i, name in enumerate(names)}
    hosts = "127.0.0.1 localhost\n" + "".join(f"{ip} {net.namespace(n)}\n" for n, ip in addresses.items())
    for name, address in addresses.items():
        namespace, outside = net.namespace(name), net.namespace(name) + "-h"
        _ip("netns", "add", namespace)
        _ip("link", "add", outside, "type", "veth", "peer", "name", "eth0", "netns", namespace)
        _ip("link", "set", outside, "master", net.bridge)
        _ip("link", "set", outside, "up")
        _ip("-n", namespace, "addr", "add", f"{address}/24", "dev", "eth0")
        _ip("-n", namespace, "link", "set", "eth0", "up")
        _ip("-n", namespace, "link", "set", "lo", "up")
        # A default route, as a real host has: Ray's own address detection (a UDP "connect" to a public
        # address) then finds this host's address instead of failing.
        _ip("-n", namespace, "route", "add", "default", "via", net.head_ip)
        (ETC_NETNS / namespace).mkdir(parents=True, exist_ok=True)
        (ETC_NETNS / namespace / "hosts").write_text(hosts)
        # The machine's resolver is not reachable from a namespace, so every name lookup the hosts file
        # does not answer waited for DNS timeouts: torch's rendezvous (it looks up its peers' names)
        # took 10 s instead of 0.5 s. A resolver on this host's loopback, where nothing listens, fails
        # at once, as a cluster's own DNS answers "no such name".
        (ETC_NETNS / namespace / "resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
    return addresses


def command_on(net: Net, name: str, argv: list[str]) -> list[str]:
    """argv run on host `name`: in its namespace, under its own hostname."""
    namespace = net.namespace(name)
    return ["ip", "netns", "exec", namespace, "unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"',
            namespace, *argv]


def pids_on(namespace: str) -> list[int]:
    """Every process in a namespace (`Net.namespace(name)`): what dies when that machine is lost."""
    result = subprocess.run(["ip", "netns", "pids", namespace], capture_output=True, text=True, timeout=30)
    return [int(p) for p in result.stdout.split()]
