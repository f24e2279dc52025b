"""`python -m services.common.reasons [--check] [ROOT]`: write (or check) the reference."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from services.common.reasons import Reason
from services.common.reasons.doc import DOC, REGENERATE, render


def main() -> int:
    parser = argparse.ArgumentParser(prog=REGENERATE, description=__doc__)
    parser.add_argument("root", nargs="?", type=Path, default=Path("."), help="repository root")
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    args = parser.parse_args()
    path: Path = args.root / DOC
    text = render()
    if args.check:
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current != text:
            print(f"{path} is stale: run {REGENERATE}", file=sys.stderr)
            return 1
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path} ({len(Reason)} codes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
