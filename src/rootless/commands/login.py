"""rootless login: log in to a registry (docker's config.json), like `docker login`."""

from __future__ import annotations

import sys

from rootless.errors import UsageError


def add_arguments(p) -> None:
    p.add_argument("server", nargs="?", help="The registry (default: Docker Hub)")
    p.add_argument("-u", "--username", help="Username")
    p.add_argument("-p", "--password", help="Password")
    p.add_argument("--password-stdin", action="store_true", help="Take the password from stdin")


def main(args, ctx) -> int:
    from rootless.engine import system

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
    system.login(ctx.config, args.server, username, password or "")
    sys.stdout.write("Login Succeeded\n")
    return 0
