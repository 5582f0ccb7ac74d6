"""The chat's layers, read from its source with ``ast``: imports run one way, net → node
→ rules ← stores, and the rules stay pure.

``python -m tests.chat.test_layers`` prints the import graph of ``wslab/chat``: each
layer's arrows, then each module's imports of the chat (a module's own ``import``
statements, those inside functions and under ``TYPE_CHECKING`` included; not what
importing its package runs).
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

CHAT = Path(__file__).resolve().parents[2] / "wslab" / "chat"
PACKAGE = "wslab.chat"

# What the pure layer may never import: I/O, concurrency, the network, the stores.
IMPURE = {
    "asyncio",
    "concurrent",
    "multiprocessing",
    "prometheus_client",
    "redis",
    "selectors",
    "socket",
    "sqlite3",
    "ssl",
    "subprocess",
    "threading",
    "websockets",
}

# The layers of the chat a layer may import (its own included). The composition root
# (cli, assemble, the package's __init__ and __main__), the synchronous model and the
# test harnesses sit on top and may import any layer.
ALLOWED = {
    "errors": {"errors"},
    "rules": {"rules", "errors"},
    "stores": {"stores", "rules", "errors"},
    "node": {"node", "stores", "rules", "errors"},
    "net": {"net", "node", "rules", "errors"},
}


def module_names() -> dict[str, Path]:
    """Every module of the chat by dotted name (a package by its own name)."""
    names = {}
    for path in sorted(CHAT.rglob("*.py")):
        parts = path.relative_to(CHAT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join((PACKAGE, *parts))] = path
    return names


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The absolute names ``name`` imports (a chat submodule when it names one)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                found.add(candidate if candidate in known else target)
    return found


def graph() -> dict[str, set[str]]:
    """Module -> every name it imports (chat modules and others)."""
    modules = module_names()
    return {name: imports_of(name, path, set(modules)) for name, path in modules.items()}


def layer(name: str) -> str:
    """The layer of a chat module: rules, stores, node, net, errors, or 'top'."""
    parts = name.removeprefix(PACKAGE).lstrip(".").split(".")
    return parts[0] if parts[0] in ALLOWED else "top"


def in_chat(name: str) -> bool:
    return name == PACKAGE or name.startswith(PACKAGE + ".")


def short(name: str) -> str:
    return name.removeprefix(PACKAGE + ".") if name != PACKAGE else "(wslab.chat)"


def impure_imports() -> list[str]:
    """What a module of rules/ imports that it must not, one line each."""
    impure = []
    for name, imported in graph().items():
        if layer(name) != "rules":
            continue
        for target in sorted(imported):
            if target.split(".")[0] in IMPURE:
                impure.append(f"{short(name)} imports {target}")
            elif target == PACKAGE or (in_chat(target) and layer(target) not in ALLOWED["rules"]):
                impure.append(f"{short(name)} imports {short(target)}")
    return impure


def wrong_way_imports() -> list[str]:
    """Imports of the chat against the layers' direction, one line each."""
    return [
        f"{short(name)} ({layer(name)}) imports {short(target)} ({layer(target)})"
        for name, imported in graph().items()
        if layer(name) in ALLOWED
        for target in sorted(imported)
        if in_chat(target) and layer(target) not in ALLOWED[layer(name)]
    ]


# -- the tests ----------------------------------------------------------------------------


def test_the_graph_reads_every_module_and_resolves_relative_imports():
    imports = graph()
    assert f"{PACKAGE}.rules.hub" in imports and f"{PACKAGE}.net.service" in imports
    assert f"{PACKAGE}.rules.messages" in imports[f"{PACKAGE}.rules.hub"]
    assert f"{PACKAGE}.errors" in imports[f"{PACKAGE}.node"]
    assert "websockets.asyncio.server" in imports[f"{PACKAGE}.net.connection"]


def test_the_rules_import_no_io_no_concurrency_and_nothing_outside_rules_and_errors():
    assert impure_imports() == []


def test_imports_run_one_way_net_node_rules_and_stores_to_rules():
    assert wrong_way_imports() == []


def test_importing_the_rules_at_run_time_loads_no_other_layer():
    """What importing runs, too: ``wslab.chat``'s own ``__init__`` imports its public
    names lazily, so the rules load without asyncio, websockets, sqlite3, redis or the
    chat's other layers (a fresh interpreter, so nothing else imported them first)."""
    import subprocess

    modules = [f"{PACKAGE}.rules.{path.stem}" for path in sorted((CHAT / "rules").glob("*.py"))]
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import sys\nfor m in {modules!r}: __import__(m)\nprint(*sys.modules)",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.split()
    others = (f"{PACKAGE}.node", f"{PACKAGE}.stores", f"{PACKAGE}.net", f"{PACKAGE}.model")
    assert [m for m in loaded if m.split(".")[0] in IMPURE or m.startswith(others)] == []


def test_the_checks_name_each_wrong_import(tmp_path, monkeypatch):
    """The checks above can fail: a rule that imports asyncio and the node, and a store
    and the node that import the network, are each named."""
    fake = tmp_path / "chat"
    for folder in ("rules", "stores", "net"):
        (fake / folder).mkdir(parents=True)
        (fake / folder / "__init__.py").write_text("")
    (fake / "node.py").write_text("from .net.service import ChatService\n")
    (fake / "net" / "service.py").write_text("from ..node import ChatNode\n")
    (fake / "rules" / "hub.py").write_text("import asyncio\nfrom ..node import ChatNode\n")
    (fake / "stores" / "memory.py").write_text("from ..net import service\n")
    monkeypatch.setattr(sys.modules[__name__], "CHAT", fake)
    assert impure_imports() == ["rules.hub imports asyncio", "rules.hub imports node"]
    assert sorted(wrong_way_imports()) == [
        "node (node) imports net.service (net)",
        "rules.hub (rules) imports node (node)",
        "stores.memory (stores) imports net.service (net)",
    ]


# -- the graph, printed ---------------------------------------------------------------------


def main() -> None:
    imports = graph()
    arrows: dict[str, set[str]] = defaultdict(set)
    for name, imported in imports.items():
        for target in imported:
            if in_chat(target) and layer(target) != layer(name):
                arrows[layer(name)].add(layer(target))
    order = ["top", "net", "node", "stores", "rules", "errors"]
    print("wslab/chat: import graph (python -m tests.chat.test_layers)\n")
    print("layers (A -> B: a module of A imports one of B)")
    for name in order:
        targets = [t for t in order if t in arrows[name]]
        print(f"  {name:7} -> {', '.join(targets) or '(nothing of the chat)'}")
    print("\nmodules (-> the chat modules each imports)")
    for name in sorted(imports, key=lambda n: (order.index(layer(n)), n)):
        targets = sorted(short(t) for t in imports[name] if in_chat(t) and t != name)
        print(f"  [{layer(name)}] {short(name)} -> {', '.join(targets) or '-'}")
    outside = sorted(
        {t.split(".")[0] for n, i in imports.items() if layer(n) == "rules" for t in i}
        - {"wslab", "__future__"}
    )
    print(f"\nwhat rules/ imports from outside the chat: {', '.join(outside)}")


if __name__ == "__main__":
    main()
