"""SQL that matters (triggers, functions), kept as SQL files so it reads and reviews as SQL."""

from pathlib import Path


def read_sql(name: str) -> str:
    return (Path(__file__).parent / name).read_text()


def sql_statements(name: str) -> list[str]:
    """The file's statements one by one (the driver runs one statement at a time). A ``;`` ends a
    statement only outside ``$$``-quoted function bodies and outside ``--`` comments."""
    statements: list[str] = []
    current: list[str] = []
    in_body = False
    for line in read_sql(name).splitlines():
        code = line.split("--", 1)[0] if not in_body else line
        if code.count("$$") % 2:
            in_body = not in_body
        current.append(line)
        if not in_body and code.rstrip().endswith(";"):
            statement = "\n".join(current).strip()
            if any(not part.strip().startswith("--") for part in statement.splitlines()):
                statements.append(statement)
            current = []
    if "".join(current).strip():
        statements.append("\n".join(current).strip())
    return statements
