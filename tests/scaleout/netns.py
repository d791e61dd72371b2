"""Hosts on one machine: Linux network namespaces joined by veth pairs to a bridge, all torn down after.

The bridge lives in the first namespace (the "data" host). The test process reaches the hosts through
one more veth whose end stays in the default namespace: the only change there is that interface and
the connected route of a private /24 nobody else uses. Nothing is forwarded or translated, so no
packet leaves the namespaces.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

# The /24s tried, in order: 10.213.<n>.0/24.
SUBNET_PREFIX = "10.213"


class NamespacesNotPermitted(RuntimeError):
    """`ip netns` cannot be used here (not root, no `ip`, or the kernel refuses)."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


def check_permitted() -> None:
    """Raise NamespacesNotPermitted with the reason when network namespaces cannot be made."""
    if shutil.which("ip") is None:
        raise NamespacesNotPermitted("the `ip` command (iproute2) is not installed")
    if os.geteuid() != 0:
        raise NamespacesNotPermitted("creating network namespaces needs root")
    probe = f"modelyard-probe-{os.getpid()}"
    made = _ip("netns", "add", probe, check=False)
    if made.returncode != 0:
        raise NamespacesNotPermitted(f"`ip netns add` failed: {made.stderr.strip()}")
    _ip("netns", "del", probe, check=False)


def _free_subnet() -> ipaddress.IPv4Network:
    """A 10.213.n.0/24 that no route or address of the default namespace overlaps."""
    routes = _ip("-4", "route", "show", "table", "all").stdout + _ip("-4", "addr").stdout
    used = [ipaddress.ip_network(word, strict=False) for word in routes.split() if _is_network(word)]
    for third in range(os.getpid() % 200, os.getpid() % 200 + 50):
        candidate = ipaddress.ip_network(f"{SUBNET_PREFIX}.{third % 250}.0/24")
        if not any(candidate.overlaps(network) for network in used if network.prefixlen > 0):
            return candidate
    raise NamespacesNotPermitted(f"no free /24 under {SUBNET_PREFIX}.0.0/16 on this machine")


def _is_network(word: str) -> bool:
    try:
        ipaddress.ip_network(word, strict=False)
    except ValueError:
        return False
    return "." in word


@dataclass
class Host:
    """One network namespace and the addresses of its end of the bridge."""

    role: str
    namespace: str
    addresses: list[str]

    @property
    def address(self) -> str:
        return self.addresses[0]

    def command(self, args: list[str], *, hostname: str | None = None) -> list[str]:
        """`args` run inside this host's namespace (and, with `hostname`, its own UTS name, so
        `socket.gethostname()` there answers that name, as on a separate machine)."""
        prefix = ["ip", "netns", "exec", self.namespace]
        if hostname:
            return [*prefix, "unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', hostname, *args]
        return [*prefix, *args]

    def pids(self) -> list[int]:
        out = _ip("netns", "pids", self.namespace, check=False).stdout
        return [int(pid) for pid in out.split()]


@dataclass
class Network:
    subnet: ipaddress.IPv4Network
    hosts: dict[str, Host] = field(default_factory=dict)
    host_side: str = ""  # the address of the default namespace's end

    def __getitem__(self, role: str) -> Host:
        return self.hosts[role]


@contextmanager
def network(layout: dict[str, int], *, log: Path) -> Iterator[Network]:
    """Namespaces for `layout` (role -> how many addresses), the first holding the bridge.

    Everything made is deleted on the way out, also when a step failed half-way: processes still in
    a namespace are killed first (a namespace with a process in it outlives `ip netns del`).
    """
    check_permitted()
    tag = f"my{os.getpid() % 100000}"
    subnet = _free_subnet()
    addresses = (str(address) for address in subnet.hosts())
    net = Network(subnet=subnet)
    made_namespaces: list[str] = []
    made_links: list[str] = []
    steps: list[str] = []

    def run(*args: str) -> None:
        steps.append("ip " + " ".join(args))
        _ip(*args)

    try:
        roles = list(layout)
        hub = f"{tag}-{roles[0]}"
        for role in roles:
            namespace = f"{tag}-{role}"
            run("netns", "add", namespace)
            made_namespaces.append(namespace)
            run("-n", namespace, "link", "set", "lo", "up")
        run("-n", hub, "link", "add", "br0", "type", "bridge")
        run("-n", hub, "link", "set", "br0", "up")
        for index, role in enumerate(roles):
            namespace = f"{tag}-{role}"
            own = [next(addresses) for _ in range(layout[role])]
            net.hosts[role] = Host(role=role, namespace=namespace, addresses=own)
            if index == 0:
                for address in own:
                    run("-n", hub, "addr", "add", f"{address}/{subnet.prefixlen}", "dev", "br0")
                continue
            # Both ends are made in the hub, then one moves: no name is ever taken in the default namespace.
            run("-n", hub, "link", "add", f"p{index}", "type", "veth", "peer", "name", "eth0")
            run("-n", hub, "link", "set", "eth0", "netns", namespace)
            run("-n", hub, "link", "set", f"p{index}", "master", "br0", "up")
            for address in own:
                run("-n", namespace, "addr", "add", f"{address}/{subnet.prefixlen}", "dev", "eth0")
            run("-n", namespace, "link", "set", "eth0", "up")
        # The test process's way in: one veth end in the default namespace, its /24 a connected route.
        outside = f"{tag}-t"
        run("-n", hub, "link", "add", "pt", "type", "veth", "peer", "name", outside)
        run("-n", hub, "link", "set", outside, "netns", "1")
        made_links.append(outside)
        run("-n", hub, "link", "set", "pt", "master", "br0", "up")
        net.host_side = next(addresses)
        run("addr", "add", f"{net.host_side}/{subnet.prefixlen}", "dev", outside)
        run("link", "set", outside, "up")
        yield net
    except subprocess.CalledProcessError as exc:
        raise RuntimeError(f"{steps[-1]} failed: {exc.stderr.strip()}") from exc
    finally:
        with log.open("a") as out:
            out.write("\n".join(steps) + "\n")
        for namespace in made_namespaces:
            _kill_all_in(namespace)
        for link in made_links:
            _ip("link", "del", link, check=False)
        for namespace in reversed(made_namespaces):
            _ip("netns", "del", namespace, check=False)


def _kill_all_in(namespace: str, grace: float = 10.0) -> None:
    """SIGTERM every process of `namespace`, SIGKILL what is left after `grace` seconds."""
    host = Host(role="", namespace=namespace, addresses=[])
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 2.0)):
        pids = host.pids()
        for pid in pids:
            with suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while host.pids() and time.monotonic() < deadline:
            time.sleep(0.1)
