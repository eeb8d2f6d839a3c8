"""rootless: a daemonless container engine for unprivileged users, shipped as one zipapp."""

__version__ = "0.1.0"
API_VERSION = "1.43"
