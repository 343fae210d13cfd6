"""Which TCP sockets a process (tree) listens on.

As a script: a process of a `jax.distributed` run, run by `launch_local`; rank 0 writes host and
port of every listening socket of its own process to the file named by argv[1] once every rank
has joined (the coordinator is up by then). As a module: `ListenersOf` records the listening
sockets of a process's descendants (a local Ray instance and its workers) while a run goes on.
"""

import ipaddress
import os
import sys
import threading

from distthrml.sharding.distributed import initialize_from_env

LISTEN = "0A"  # the TCP state code of a listening socket in /proc/net/tcp*


def own_socket_inodes() -> set[str]:
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    return inodes


def decode(address: str) -> str:
    """`0100007F:1F90` (little-endian hex words) as `127.0.0.1 8080`; IPv6 likewise (IPv4-mapped ones as IPv4)."""
    host, port = address.split(":")
    words = [bytes.fromhex(host[i:i + 8])[::-1] for i in range(0, len(host), 8)]
    raw = b"".join(words)
    if len(raw) == 4:
        text = ".".join(str(b) for b in raw)
    else:
        v6 = ipaddress.IPv6Address(raw)
        text = str(v6.ipv4_mapped or v6)
    return f"{text} {int(port, 16)}"


def listening() -> list[str]:
    mine = own_socket_inodes()
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if fields[3] == LISTEN and fields[9] in mine:
                    found.append(decode(fields[1]))
    return found


class ListenersOf:
    """While active, poll the listening TCP sockets of every descendant of process `pid`.

    **Attributes:** `found`: `{(process name, host, port)}` seen so far.
    """

    def __init__(self, pid: int, every_s: float = 0.2):
        self.pid, self.every_s = pid, every_s
        self.found: set[tuple[str, str, int]] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        import psutil

        root = psutil.Process(self.pid)
        while not self._stop.is_set():
            for proc in root.children(recursive=True):
                try:
                    name = proc.name()
                    for c in proc.net_connections(kind="inet"):
                        if c.status == psutil.CONN_LISTEN:
                            self.found.add((name, _unmapped(c.laddr.ip), c.laddr.port))
                except psutil.Error:  # exited meanwhile
                    continue
            self._stop.wait(self.every_s)

    def __enter__(self) -> "ListenersOf":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def _unmapped(host: str) -> str:
    address = ipaddress.ip_address(host)
    mapped = getattr(address, "ipv4_mapped", None)
    return str(mapped or address)


if __name__ == "__main__":
    initialize_from_env()
    import jax
    from jax.experimental import multihost_utils

    multihost_utils.sync_global_devices("all ranks joined")
    if jax.process_index() == 0:
        with open(sys.argv[1], "w") as f:
            f.write("\n".join(listening()))  # one "host port" per line
    multihost_utils.sync_global_devices("reported")
