"""Test support: small real components (spec + driver) that exercise connections, secrets and failures."""

from __future__ import annotations

import os
import subprocess
import sys

import pyarrow as pa

from osiris_core.driver import MAIN_OUTPUT, Driver, DriverConfig, StepContext, StepInputs, StepOutputs
from osiris_core.errors import DriverError
from osiris_core.registry import Component
from osiris_core.spec import parse_spec

PROBE_SPEC = """
name: test.probe
version: 1.0.0
description: Emits one row describing the connection it was given (test support).
modes: [read, transform]
driver: tests.support.components:ProbeDriver
connection:
  family: testdb
  fields: [host, user, password]
secrets: [password]
config:
  type: object
  additionalProperties: false
  properties:
    connection: {type: string}
    rows: {type: integer, minimum: 0, default: 1}
    fail_with: {type: string}
"""


class ProbeConfig(DriverConfig):
    host: str
    user: str
    password: str
    rows: int = 1
    fail_with: str | None = None


class ProbeDriver(Driver[ProbeConfig]):
    """Fails with `fail_with` (which may embed the password) or emits `rows` rows naming host and user."""

    config_model = ProbeConfig

    def run(self, *, step_id: str, config: ProbeConfig, inputs: StepInputs, ctx: StepContext) -> StepOutputs:
        if config.fail_with is not None:
            raise DriverError(config.fail_with.replace("{password}", config.password), step_id=step_id)
        ctx.event("probe_connected", dsn=f"testdb://{config.user}:{config.password}@{config.host}/x")
        table = pa.table(
            {"i": list(range(config.rows)), "host": [config.host] * config.rows, "user": [config.user] * config.rows}
        )
        return {MAIN_OUTPUT: table}


def probe_component() -> Component:
    return Component(spec=parse_spec(PROBE_SPEC, origin="tests/support/components.py"), driver=ProbeDriver)


def probe_components() -> list[Component]:
    """The entry-point provider form: a callable returning components."""
    return [probe_component()]


CHATTY_SPEC = """
name: test.chatty
version: 1.0.0
description: Writes to standard output three ways while it runs, then emits one row (test support).
modes: [read]
driver: tests.support.components:ChattyDriver
config:
  type: object
  additionalProperties: false
  properties: {}
"""


class ChattyConfig(DriverConfig):
    pass


class ChattyDriver(Driver[ChattyConfig]):
    """Prints, writes to file descriptor 1 and runs a child process that prints: what a chatty library does."""

    config_model = ChattyConfig

    def run(self, *, step_id: str, config: ChattyConfig, inputs: StepInputs, ctx: StepContext) -> StepOutputs:
        print("chatty: print() noise", flush=True)
        os.write(1, b"chatty: descriptor noise\n")
        subprocess.run([sys.executable, "-c", "print('chatty: child noise')"], check=True)
        return {MAIN_OUTPUT: pa.table({"n": [1]})}


def chatty_component() -> Component:
    return Component(spec=parse_spec(CHATTY_SPEC, origin="tests/support/components.py"), driver=ChattyDriver)
