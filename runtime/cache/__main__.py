"""``python -m runtime.cache info|clear``: see or remove deferc's compiled-code cache."""

from __future__ import annotations

import argparse
import json
import sys

from . import clear, info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime.cache",
                                     description="deferc's on-disk cache of compiled code")
    sub = parser.add_subparsers(dest="command", required=True)
    show = sub.add_parser("info", help="where the cache is, its size, this environment's key")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    wipe = sub.add_parser("clear", help="remove cached code (every environment by default)")
    wipe.add_argument("--current", action="store_true",
                      help="only this environment's directory")
    args = parser.parse_args(argv)
    if args.command == "info":
        facts = info()
        if args.json:
            print(json.dumps(facts, indent=1))
            return 0
        print(f"cache root: {facts['root']}")
        print(f"this environment: {facts['current']}")
        for key, value in facts["environment"].items():
            print(f"  {key}: {value}")
        for d in facts["directories"]:
            mark = "*" if d["current"] else " "
            print(f" {mark} {d['name']}  {d['bytes'] / 2**20:8.1f} MiB  {d['plans']} plans")
        if not facts["directories"]:
            print("  (empty)")
        return 0
    removed = clear(everything=not args.current)
    print("\n".join(f"removed {path}" for path in removed) or "nothing to remove")
    return 0


if __name__ == "__main__":
    sys.exit(main())
