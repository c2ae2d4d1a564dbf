"""`python -m snncc`: the same command as `snncc`."""

from snncc.app.cli import main

if __name__ == "__main__":
    main()
