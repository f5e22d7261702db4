"""``python -m crossfill ...``: the ``crossfill`` command."""
from crossfill.cli import main

if __name__ == "__main__":
    main()
