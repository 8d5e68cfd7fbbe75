"""`osiris mcp` through the official MCP SDK's own client over stdio: a real server process, real tools."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.types import CallToolResult, TextContent

import osiris_cli
from osiris_cli.main import main
from tests.conftest import REPO_ROOT

REQUIRED_TOOLS = {"components_list", "components_show", "connections_list", "discover", "validate", "compile",
                  "dry_run", "run", "logs_list", "logs_show"}
SECRET = "hunter2-mcp-secret"
ENV_SECRET = "env-borne-pw-4242"


def _server(project: Path) -> StdioServerParameters:
    code_roots = [str(Path(osiris_cli.__file__).resolve().parents[1]), str(REPO_ROOT)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(code_roots + [p for p in sys.path if os.path.isabs(p)]),
           "PG_SECRET": ENV_SECRET}
    env.pop("OSIRIS_CONNECTIONS", None)
    return StdioServerParameters(command=sys.executable, args=["-m", "osiris_cli.main", "mcp"], env=env,
                                 cwd=str(project))


def _with_session(project: Path, body: Callable[[ClientSession], Awaitable[None]]) -> None:
    async def main() -> None:
        async with asyncio.timeout(120):
            async with stdio_client(_server(project)) as (read, write), ClientSession(read, write) as session:
                await session.initialize()
                await body(session)

    asyncio.run(main())


def _text(result: CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


def _data(result: CallToolResult) -> Any:
    assert not result.isError, _text(result)
    structured = result.structuredContent
    assert structured is not None
    return structured.get("result", structured) if set(structured) == {"result"} else structured


@pytest.fixture
def workspace(project: Path) -> Path:
    (project / "in.csv").write_text("n,label\n1,a\n2,b\n3,c\n", encoding="utf-8")
    (project / "good.yaml").write_text(
        'oml_version: "0.1.0"\nname: copy\nsteps:\n'
        "  - {id: read, component: filesystem.csv_extractor, mode: read, config: {path: in.csv}}\n"
        "  - id: keep-two\n    component: duckdb.processor\n    mode: transform\n    needs: [read]\n"
        "    config: {query: SELECT * FROM read WHERE n < 3}\n"
        "  - {id: write, component: filesystem.csv_writer, mode: write, needs: [keep-two], config: {path: out.csv}}\n",
        encoding="utf-8")
    (project / "broken.yaml").write_text(
        'oml_version: "0.1.0"\nname: broken\nsteps:\n  - id: a\n    component: filesystem.csv_extractr\n'
        "    mode: read\n", encoding="utf-8")
    # A step that echoes a connection's secret into its error: the run card must not carry it out.
    (project / "leaky.yaml").write_text(
        'oml_version: "0.1.0"\nname: leaky\nsteps:\n'
        f"  - {{id: read, component: filesystem.csv_extractor, mode: read, config: {{path: {ENV_SECRET}.csv}}}}\n",
        encoding="utf-8")
    (project / "osiris_connections.yaml").write_text(
        "connections:\n  mysql:\n    main:\n      host: h\n      database: d\n      user: u\n"
        f"      password: {SECRET}\n  postgres:\n    main:\n      host: h\n      database: d\n      user: u\n"
        "      password: ${PG_SECRET}\n", encoding="utf-8")
    return project


def test_tools_are_listed_with_descriptions(workspace: Path) -> None:
    async def body(session: ClientSession) -> None:
        tools = {tool.name: tool for tool in (await session.list_tools()).tools}
        assert set(tools) >= REQUIRED_TOOLS
        assert all(tools[name].description for name in REQUIRED_TOOLS)
        assert tools["validate"].inputSchema["required"] == ["pipeline"]
        assert set(tools["discover"].inputSchema["properties"]) == {"connection", "schema"}

    _with_session(workspace, body)


def test_validate_returns_located_errors_and_run_returns_the_card(workspace: Path) -> None:
    async def body(session: ClientSession) -> None:
        checked = _data(await session.call_tool("validate", {"pipeline": "broken.yaml"}))
        assert checked["valid"] is False
        error = checked["errors"][0]
        assert (error["file"], error["line"]) == ("broken.yaml", 5)
        assert "unknown component 'filesystem.csv_extractr'" in error["message"]
        assert "did you mean 'filesystem.csv_extractor'" in error["hint"]
        assert error["text"].startswith("broken.yaml:5:")
        assert _data(await session.call_tool("validate", {"pipeline": "good.yaml"}))["valid"] is True

        card = _data(await session.call_tool("run", {"target": "good.yaml"}))
        assert card["status"] == "succeeded"
        assert [(s["step_id"], s["rows_out"]) for s in card["steps"]] == [("read", 3), ("keep-two", 2), ("write", 2)]
        assert (workspace / "out.csv").read_text(encoding="utf-8").splitlines() == ["n,label", "1,a", "2,b"]

        sessions = _data(await session.call_tool("logs_list", {"pipeline": "copy", "status": "succeeded"}))
        assert [s["session"] for s in sessions] == [card["session_id"]]
        shown = _data(await session.call_tool("logs_show", {"session": card["session_id"], "events": True}))
        assert shown["session_id"] == card["session_id"]
        assert shown["events"][-1]["event"] == "run_complete"

        compiled = _data(await session.call_tool("compile", {"pipeline": "good.yaml"}))
        assert compiled["steps"] == ["read", "keep-two", "write"]
        missing = await session.call_tool("run", {"target": "nope.yaml"})
        assert missing.isError and "nope.yaml: file not found" in _text(missing)

    _with_session(workspace, body)


def test_no_tool_returns_a_secret(workspace: Path) -> None:
    outputs: list[str] = []

    async def body(session: ClientSession) -> None:
        calls: list[tuple[str, dict[str, Any]]] = [
            ("connections_list", {}), ("components_list", {}), ("components_show", {"name": "mysql.extractor"}),
            ("validate", {"pipeline": "leaky.yaml"}), ("run", {"target": "leaky.yaml"}), ("logs_list", {}),
            ("discover", {"connection": "@postgres"}), ("logs_show", {"session": "run_nope"}),
        ]
        for name, arguments in calls:
            result = await session.call_tool(name, arguments)
            outputs.append(_text(result) + json.dumps(result.structuredContent))
        listed = _data(await session.call_tool("connections_list", {}))
        assert listed["connections"]["mysql"]["main"]["password"] == "***"
        assert listed["connections"]["postgres"]["main"]["password"] == "***"
        card = _data(await session.call_tool("run", {"target": "leaky.yaml"}))
        assert card["status"] == "failed" and "***.csv" in card["error"]
        shown = _data(await session.call_tool("logs_show", {"session": card["session_id"], "events": True}))
        outputs.append(json.dumps(shown))

    _with_session(workspace, body)
    assert len(outputs) == 9
    for output in outputs:
        assert SECRET not in output and ENV_SECRET not in output


def test_discover_and_dry_run_answer_as_the_cli_json(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with (workspace / "osiris_connections.yaml").open("a", encoding="utf-8") as stream:
        stream.write("  filesystem:\n    here:\n      path: in.csv\n")
    expected = {}
    for argv in (["discover", "@filesystem.here"], ["run", "good.yaml", "--dry-run"]):
        capsys.readouterr()
        assert main([*argv, "--json"]) == 0
        expected[argv[0]] = json.loads(capsys.readouterr().out)
    assert expected["discover"]["tables"][0]["columns"][0] == {"name": "n", "type": "int64", "nullable": False,
                                                               "primary_key": False}

    async def body(session: ClientSession) -> None:
        found = _data(await session.call_tool("discover", {"connection": "@filesystem.here"}))
        assert found == expected["discover"]
        assert _data(await session.call_tool("dry_run", {"target": "good.yaml"})) == expected["run"]
        unknown = await session.call_tool("discover", {"connection": "@oracle"})
        assert unknown.isError and "no connection family 'oracle'" in _text(unknown)
        refused = await session.call_tool("discover", {"connection": "@filesystem.here", "schema": "sales"})
        assert refused.isError and "@filesystem.here: --schema does not apply" in _text(refused)

    _with_session(workspace, body)
    assert not (workspace / "out.csv").exists() and not (workspace / "logs").exists()


def test_a_broken_connections_file_is_a_located_error_not_a_dead_server(workspace: Path) -> None:
    (workspace / "osiris_connections.yaml").write_text(f"connections:\n  mysql: [{SECRET}]\n", encoding="utf-8")

    async def body(session: ClientSession) -> None:
        broken = await session.call_tool("connections_list", {})
        assert broken.isError and "osiris_connections.yaml:2:" in _text(broken)
        assert SECRET not in _text(broken)
        assert any(c["name"] == "duckdb.writer" for c in _data(await session.call_tool("components_list", {})))

    _with_session(workspace, body)
