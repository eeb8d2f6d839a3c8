"""The lines every container's /etc/hosts starts with (Docker's layout: localhost and the IPv6 names).

A module of its own, so that the engine's fast path (``run --network none``) and
``rootless.network.hosts`` share one copy without the first importing the network package.
"""

DEFAULT_HOSTS = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "ff00::0\tip6-mcastprefix\n"
    "ff02::1\tip6-allnodes\n"
    "ff02::2\tip6-allrouters\n"
)
