"""rootless login: log in to a registry (docker's config.json), like `docker login`."""

from __future__ import annotations

import sys

from rootless.errors import UsageError


def add_arguments(p) -> None:
    p.add_argument("server", nargs="?", help="The registry (default: Docker Hub)")
    p.add_argument("-u", "--username", help="Username")
    p.add_argument("-p", "--password", help="Password")
    p.add_argument("--password-stdin", action="store_true", help="Take the password from stdin")


def server_host(server) -> str:
    from rootless.image import auth

    if not server:
        return "docker.io"
    host = auth.hostname_of(server)
    if host in ("index.docker.io", "registry-1.docker.io", "docker.io"):
        return "docker.io"
    return host


def main(args, ctx) -> int:
    from rootless.image import auth
    from rootless.image.registry import RegistryClient

    host = server_host(args.server)
    username = args.username
    password = args.password
    if args.password_stdin:
        if password:
            raise UsageError("login: --password and --password-stdin are mutually exclusive", "use one of them")
        if not username:
            raise UsageError("login: must provide --username with --password-stdin", "add -u USER")
        password = sys.stdin.read().rstrip("\r\n")
    elif password:
        sys.stderr.write("WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n")
    if not username or password is None:
        if not sys.stdin.isatty():
            raise UsageError("login: cannot prompt for credentials: stdin is not a terminal",
                             "give -u USER and --password-stdin (or -p)")
        import getpass

        if not username:
            sys.stderr.write("Username: ")
            sys.stderr.flush()
            username = sys.stdin.readline().strip()
        if password is None:
            password = getpass.getpass("Password: ")
    if not username:
        raise UsageError("login: the username is empty", "give -u USER")
    creds = (username, password or "")
    client = RegistryClient(ctx.config, host, "", credentials=lambda h: creds, what=host)
    client.verb = "log in to"
    ep = client.endpoints[-1]
    client.login_check(ep)
    path = auth.store_credentials(host, username, password or "")
    del path
    sys.stdout.write("Login Succeeded\n")
    return 0
