"""``python -m crossfill.cli ...``: how the CLI runs its own commands as child processes."""
from crossfill.cli import main

if __name__ == "__main__":
    main()
