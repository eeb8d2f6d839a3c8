"""`python3 -m rootless`."""

from rootless.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
