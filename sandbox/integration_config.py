"""Print tests/integration/integration_config.yml for ansible-test: the sandbox settings as the `sandbox` variable."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

#: The refresh token lifetime the expiring token endpoint states: an hour, well within any refresh_token_warn_days.
EXPIRING_REFRESH_TOKEN_SECONDS = 3600


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--state-dir", required=True, type=Path)
    args = parser.parse_args()
    settings = json.loads((args.state_dir / "sandbox.json").read_text(encoding="utf-8"))
    dovecot = args.state_dir / "dovecot.json"
    if dovecot.is_file():
        settings.update(json.loads(dovecot.read_text(encoding="utf-8")))
    # A token endpoint that states a refresh token lifetime short enough for refresh_token_warn_days to warn.
    settings["expiring_refresh_token_seconds"] = EXPIRING_REFRESH_TOKEN_SECONDS
    settings["token_uri_expiring_refresh_token"] = settings["token_uri_fault"].replace(
        "{fault}", f"rtexpires{EXPIRING_REFRESH_TOKEN_SECONDS}")
    # JSON is YAML: one line, nothing to escape by hand.
    print(json.dumps({"sandbox": settings}, sort_keys=True))


if __name__ == "__main__":
    main()
