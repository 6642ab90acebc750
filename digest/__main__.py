"""Allow ``python -m digest``.

May import: cli.
"""

from digest.cli import main

if __name__ == "__main__":
    main()
