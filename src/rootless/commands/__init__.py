"""One module per CLI command: ``add_arguments(parser)`` and ``main(args, ctx) -> int``."""
