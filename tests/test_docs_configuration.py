"""docs/configuration.md names every environment variable the product reads, and only those.

The variables are found by reading the source, not from a list: calls of django-environ's readers
(`env.str("NAME", ...)`, `env.int`, `env.bool`, `env.list`, `env.float`, `env.db`, `env.email_url`, ...),
`os.environ.get("NAME")`, `os.environ["NAME"]`, `os.getenv("NAME")`, and the same through a small
function that passes its parameter on (`_networks("METRICS_ALLOW", ...)`); in the shell scripts and
the Procfile and docker-compose.yml `${NAME:-default}`; in the Makefile `NAME ?= default`.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "configuration.md"

# The two modules every setting goes through: a failure to find their variables is a broken parser.
CORE_SOURCES = [ROOT / "backend" / "config" / "settings.py", ROOT / "mlops" / "config.py"]

ENV_READERS = frozenset(
    {"str", "int", "bool", "list", "float", "db", "db_url", "email_url", "url", "json", "dict", "tuple", "path"}
    | {"cache", "cache_url", "search_url", "bytes", "get_value", "parse_value"}
)

SHELL_READ = re.compile(r"\$\{([A-Z][A-Z0-9_]*)(?::?[-=?+][^}]*)?\}")
MAKE_DEFAULT = re.compile(r"^([A-Z][A-Z0-9_]*)\s*\?=", re.MULTILINE)
DOC_NAME = re.compile(r"`([A-Z][A-Z0-9_]{2,})`")


def python_sources() -> list[Path]:
    """Every Python file of the product and its scripts (not the tests), the gunicorn settings included."""
    files = [ROOT / "gunicorn.conf.py"]
    for package in ("backend", "mlops", "scripts"):
        files += [
            path
            for path in sorted((ROOT / package).rglob("*.py"))
            if "tests" not in path.relative_to(ROOT).parts and "migrations" not in path.parts
        ]
    return [path for path in files if path.exists()]


def shell_sources() -> list[Path]:
    """Files that read variables as `${NAME:-default}`: the scripts, the Procfile, the compose file."""
    files = [*sorted((ROOT / "scripts").glob("*.sh")), ROOT / "Procfile", ROOT / "docker-compose.yml"]
    return [path for path in files if path.exists()]


def _is_os_environ(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "environ" and _is_name(node.value, "os")


def _is_name(node: ast.AST, name: str) -> bool:
    return isinstance(node, ast.Name) and node.id == name


def _read_argument(node: ast.AST) -> ast.AST | None:
    """The expression naming the variable when `node` reads one from the environment, else None."""
    if isinstance(node, ast.Call) and node.args:
        func = node.func
        if _is_name(func, "env"):  # env("NAME", ...)
            return node.args[0]
        if isinstance(func, ast.Attribute):
            if _is_name(func.value, "env") and func.attr in ENV_READERS:
                return node.args[0]
            if _is_os_environ(func.value) and func.attr == "get":
                return node.args[0]
            if _is_name(func.value, "os") and func.attr == "getenv":
                return node.args[0]
    if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) and _is_os_environ(node.value):
        return node.slice
    membership = isinstance(node, ast.Compare) and len(node.ops) == 1 and isinstance(node.ops[0], ast.In | ast.NotIn)
    if membership and _is_os_environ(node.comparators[0]):
        return node.left
    return None


def _literal(node: ast.AST | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def python_reads(source: str) -> set[str]:
    """Names of the environment variables a Python module reads."""
    tree = ast.parse(source)
    names: set[str] = set()
    # Functions that read the variable named by one of their parameters: {function name: parameter index}.
    readers: dict[str, int] = {}
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef):
            continue
        params = [arg.arg for arg in function.args.args]
        for node in ast.walk(function):
            argument = _read_argument(node)
            if isinstance(argument, ast.Name) and argument.id in params:
                readers[function.name] = params.index(argument.id)
    for node in ast.walk(tree):
        if (name := _literal(_read_argument(node))) is not None:
            names.add(name)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in readers:
            index = readers[node.func.id]
            if len(node.args) > index and (name := _literal(node.args[index])) is not None:
                names.add(name)
    return names


def shell_reads(text: str) -> set[str]:
    return set(SHELL_READ.findall(text))


def make_reads(text: str) -> set[str]:
    return set(MAKE_DEFAULT.findall(text))


def product_reads() -> dict[str, set[str]]:
    """{variable: files that read it} over the whole product."""
    found: dict[str, set[str]] = {}
    sources = [(path, python_reads) for path in python_sources()] + [(path, shell_reads) for path in shell_sources()]
    if (ROOT / "Makefile").exists():
        sources.append((ROOT / "Makefile", make_reads))
    for path, reader in sources:
        for name in reader(path.read_text()):
            found.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    return found


def documented(markdown: str) -> set[str]:
    """Variables named in backticks in the tables of the configuration reference."""
    return {name for line in markdown.splitlines() if line.startswith("|") for name in DOC_NAME.findall(line)}


def undocumented(reads: dict[str, set[str]], markdown: str) -> dict[str, set[str]]:
    names = documented(markdown)
    return {name: files for name, files in reads.items() if name not in names}


def test_the_parser_finds_reads_of_every_form():
    source = """
import os
import environ
env = environ.Env()

def _networks(name, default):
    return env.list(name, default=default)

def _number(label, name, default):
    return int(os.environ.get(name) or default)

A = env.str("A_STR", default="")
B = env.int("B_INT", default=1)
C = env.bool("C_BOOL", default=False)
D = env.db("D_URL", default="sqlite://")
E = env.email_url("E_MAIL", default="consolemail://")
F = env("F_CALL", default="")
G = os.environ.get("G_GET")
H = os.environ["H_ITEM"]
I = os.getenv("I_GETENV")
J = "J_IN" in os.environ
K = _networks("K_NETWORKS", default=[])
L = _number("not a name", "L_POSITION", 1)
os.environ["NOT_A_READ"] = "1"
os.environ.setdefault("NOT_A_READ_EITHER", "1")
"""
    expected = {"A_STR", "B_INT", "C_BOOL", "D_URL", "E_MAIL", "F_CALL", "G_GET", "H_ITEM", "I_GETENV", "J_IN"}
    assert python_reads(source) == expected | {"K_NETWORKS", "L_POSITION"}
    shell = 'x=${REDIS_URL:-redis://}; y="${ROLE}" ${lower:-no} ${#ARRAY[@]} $PLAIN'
    assert shell_reads(shell) == {"REDIS_URL", "ROLE"}
    assert make_reads("PYTHON ?= python3\nVENV := x\nVENV_HOME ?= ~/.cache\n") == {"PYTHON", "VENV_HOME"}


def test_a_missing_variable_is_reported():
    reads = {"DATABASE_URL": {"settings.py"}, "BRAND_NEW_SETTING": {"settings.py"}}
    markdown = "| variable | default |\n|---|---|\n| `DATABASE_URL` | sqlite |\nIn prose only: `BRAND_NEW_SETTING`.\n"
    assert undocumented(reads, markdown) == {"BRAND_NEW_SETTING": {"settings.py"}}


def test_the_core_modules_are_read():
    """settings.py and mlops/config.py yield the variables everyone knows they read."""
    settings_reads = python_reads(CORE_SOURCES[0].read_text())
    mlops_reads = python_reads(CORE_SOURCES[1].read_text())
    assert {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "EMAIL_URL", "METRICS_ALLOW"} <= settings_reads
    assert len(settings_reads) > 50
    assert {"VAR_DIR", "MLFLOW_TRACKING_URI", "MAX_IMAGE_PIXELS"} <= mlops_reads


@pytest.mark.parametrize("path", CORE_SOURCES, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_variable_of_the_core_modules_is_documented(path):
    missing = undocumented({name: {path.name} for name in python_reads(path.read_text())}, DOC.read_text())
    assert not missing, f"read by {path.relative_to(ROOT)} but not in docs/configuration.md: {sorted(missing)}"


def test_every_variable_the_product_reads_is_documented():
    missing = undocumented(product_reads(), DOC.read_text())
    assert not missing, "not in docs/configuration.md: " + ", ".join(
        f"{name} ({', '.join(sorted(files))})" for name, files in sorted(missing.items())
    )


def test_every_documented_variable_exists():
    """A variable in the reference's tables is named somewhere in the product's code or its .env.example."""
    texts = [path.read_text() for path in python_sources() + shell_sources()]
    texts += [
        (ROOT / name).read_text()
        for name in ("Makefile", ".env.example", "Dockerfile", "docker-compose.yml")
        if (ROOT / name).exists()
    ]
    code = "\n".join(texts)
    stale = sorted(name for name in documented(DOC.read_text()) if not re.search(rf"\b{name}\b", code))
    assert not stale, f"documented in docs/configuration.md but read nowhere: {stale}"
