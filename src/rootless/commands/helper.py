"""`rootless helper`: run the root network helper in the foreground (see rootless-helper(1))."""

from __future__ import annotations

DESCRIPTION = "Run the root network helper (bridge mode) in the foreground, as root."


def add_arguments(parser) -> None:
    parser.add_argument("--socket", default=None, help="Unix socket to listen on (default: helper-socket, /run/rootless-helper.sock)")
    parser.add_argument("--bip", default=None, help="Bridge address and prefix (default: bip, else 172.31.0.1/16)")
    parser.add_argument("--state-dir", default=None, help="Where leases are kept (default /var/lib/rootless-helper)")
    parser.add_argument("--firewall", default="auto", choices=("auto", "nftables", "iptables"),
                        help="NAT rules with nft, or iptables (default: nft when installed)")
    parser.add_argument("--port-quota", type=int, default=None, metavar="N",
                        help="Host ports one user may publish through the helper (default 64; root has no quota)")


def main(args, ctx) -> int:
    from rootless.network import helper

    cfg = ctx.config
    explicit = args.bip is not None or cfg.bip != helper.DOCKER_BIP
    bip = helper.choose_bip(args.bip or cfg.bip, explicit)
    quota = helper.DEFAULT_PORT_QUOTA if args.port_quota is None else args.port_quota
    helper.main(args.socket or cfg.helper_socket, bip, args.state_dir or helper.DEFAULT_STATE_DIR, args.firewall, quota)
    return 0
