"""``python -m worker.cli ...``: how the CLI runs its own commands as child processes."""
from worker.cli import main

if __name__ == "__main__":
    main()
