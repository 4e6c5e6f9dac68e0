"""Print tests/integration/integration_config.yml for ansible-test: the sandbox settings as the `sandbox` variable."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--state-dir", required=True, type=Path)
    args = parser.parse_args()
    settings = json.loads((args.state_dir / "sandbox.json").read_text(encoding="utf-8"))
    dovecot = args.state_dir / "dovecot.json"
    if dovecot.is_file():
        settings.update(json.loads(dovecot.read_text(encoding="utf-8")))
    # JSON is YAML: one line, nothing to escape by hand.
    print(json.dumps({"sandbox": settings}, sort_keys=True))


if __name__ == "__main__":
    main()
