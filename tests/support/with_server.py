"""Run a command in server mode: a `runplane server` on a fresh database, the command pointed at
it by RUNPLANE_SERVER_URL alone; the server is stopped afterwards, whatever the command did.

    python tests/support/with_server.py [--database URL] -- COMMAND [ARG...]

Without --database, a SQLite file in a temporary directory (removed afterwards). Exits with the
command's status. Used by `nox -s server_mode` to run the conformance suite and the SDK's own
tests against the durable backend in server mode.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `support` from the tests folder

from support.durable_server import running_server, server_env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", help="the server's database (default: a fresh SQLite file)")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --")
    with tempfile.TemporaryDirectory(prefix="runplane-server-mode-") as tmp:
        database = args.database or f"sqlite:///{Path(tmp) / 'runs.db'}"
        with running_server(database, Path(tmp) / "server.log") as server:
            print(f"server mode: {server.url} serving {database}", file=sys.stderr, flush=True)
            try:
                done = subprocess.run(command, env=server_env(server.url), check=False)
            except KeyboardInterrupt:
                return 130
            log = (Path(tmp) / "server.log").read_text(errors="replace")
            if done.returncode != 0:
                print(f"the server's log (last lines):\n{log[-4000:]}", file=sys.stderr)
            # Proof the runs went through the server: a mode that silently ran embedded shows 0.
            opened = log.count('"POST /api/v1/sessions HTTP')
            writes = log.count('"POST /api/v1/sessions/')
            print(
                f"server mode: the server opened {opened} runs and took {writes} writes",
                file=sys.stderr,
            )
            return done.returncode


if __name__ == "__main__":
    sys.exit(main())
