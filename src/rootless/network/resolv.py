"""The container's /etc/resolv.conf: the generator is ``rootless.etcfiles`` (one for every mode)."""

from rootless.etcfiles import FALLBACK, MAX_NAMESERVERS, SLIRP_DNS, SLIRP_DNS6, HostResolv, nameservers
from rootless.etcfiles import make_resolv as make
from rootless.etcfiles import parse_resolv as parse
from rootless.etcfiles import read_host_resolv as read_host

__all__ = ["FALLBACK", "MAX_NAMESERVERS", "SLIRP_DNS", "SLIRP_DNS6", "HostResolv", "make", "nameservers", "parse",
           "read_host"]
