"""`python -m chatapp.store`: migrate the database by hand, or write a new migration.

The app migrates itself at start-up; this is for operators (a downgrade before
rolling back a release) and for whoever changes models.py.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from .engine import database_url
from .migrate import current_revision, downgrade, new_revision, upgrade

# Flask's instance folder for the chatapp package, where the app keeps its SQLite file by default.
DEFAULT_INSTANCE = Path(__file__).resolve().parents[2] / "instance"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m chatapp.store", description=__doc__)
    parser.add_argument("--url", default=os.environ.get("DATABASE_URL"), help="default: DATABASE_URL")
    parser.add_argument("--instance", default=DEFAULT_INSTANCE, help="the SQLite file's folder without a URL")
    actions = parser.add_subparsers(dest="action", required=True)
    actions.add_parser("upgrade", help="to head, or to a revision").add_argument(
        "revision", nargs="?", default="head"
    )
    actions.add_parser("downgrade", help="to a revision, or base").add_argument("revision")
    actions.add_parser("current", help="the revision the database is at")
    actions.add_parser("revision", help="write a new migration from models.py").add_argument(
        "-m", "--message", required=True
    )
    args = parser.parse_args(argv)

    url = database_url(args.url, args.instance)
    if args.action == "upgrade":
        upgrade(url, args.revision)
    elif args.action == "downgrade":
        downgrade(url, args.revision)
    elif args.action == "current":
        print(current_revision(url) or "(empty)")
    else:
        new_revision(args.message)


if __name__ == "__main__":
    main()
