"""The PostgreSQL guard: prove one generated statement read-only and confined before it runs.

The SQL is parsed by libpg_query (via pglast), i.e. PostgreSQL's own grammar, so there is no
second opinion about where strings, comments, dollar quotes or statements begin and end. The
whole raw parse tree is then walked against allowlists: node kinds, functions, types, operators
and relations. Anything the walker does not recognise is refused rather than passed through.

What `check_postgres` returns is *not* the caller's text but pglast's re-serialisation of the
checked tree, in which every relation is schema-qualified to the exact table it was checked
against and every function call is qualified with `pg_catalog`. That makes what runs independent
of the session's `search_path`: an excluded table of the same name in an earlier schema, a
temporary table, or a user function shadowing a built-in can no longer change what a name
means between the check and the execution. The text is re-parsed and re-checked before it is
returned, so the string handed to the database is itself one that passed the guard.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec
from pglast import ast, parse_sql
from pglast.enums.parsenodes import A_Expr_Kind
from pglast.parser import ParseError
from pglast.stream import RawStream

from shared.pipeline_errors import SqlRejected
from shared.sqlguard.functions import (
    ALLOWED_FUNCTIONS,
    ALLOWED_OPERATORS,
    ALLOWED_TYPES,
    SYSTEM_COLUMNS,
)

# Far above any sensible generated query; keeps parser and walker cost bounded.
MAX_SQL_LENGTH = 100_000

_CATALOG = "pg_catalog"


class PostgresPolicy(msgspec.Struct, frozen=True):
    """What one data source lets generated SQL read.

    `allowed_tables` holds (schema, relation) pairs spelled exactly as in the catalogue
    (`pg_namespace.nspname`, `pg_class.relname`): lower case for names created unquoted, case
    preserved for names created quoted. Views count as tables. `search_path` resolves
    unqualified names, in order, to the first schema where that name is an allowed table.
    """

    allowed_tables: frozenset[tuple[str, str]]
    search_path: tuple[str, ...]


def check_postgres(sql: str, policy: PostgresPolicy) -> str:
    """Return the single statement, normalised for execution, or raise SqlRejected.

    The result is pglast's re-serialisation of the checked tree (see the module docstring for
    why): no comments, no trailing semicolon, relations and functions fully qualified.
    """
    normalised = _check_once(sql, policy)
    # The printer is trusted to be faithful, but the string that reaches the server must be
    # one the guard has accepted, not merely one derived from such a string.
    if _check_once(normalised, policy) != normalised:
        raise SqlRejected("internal_error", "the statement could not be normalised consistently")
    return normalised


def _check_once(sql: str, policy: PostgresPolicy) -> str:
    if len(sql) > MAX_SQL_LENGTH:
        raise SqlRejected(
            "too_long", f"the statement is {len(sql)} characters long; the limit is {MAX_SQL_LENGTH}"
        )
    if "\x00" in sql:
        # libpg_query reads a C string: anything after a NUL would silently vanish.
        raise SqlRejected("parse_error", "the statement contains a NUL character")
    try:
        stmt = _parse_single(sql)
        _Checker(policy).check_statement(stmt)
        return RawStream()(stmt)
    except RecursionError:
        # Python's recursion limit bounds the walker and pglast's printer at roughly 160 chained
        # operators or a few dozen nested subqueries: far beyond a sensible answer.
        raise SqlRejected(
            "too_complex",
            "the statement is nested too deeply to be checked; use fewer chained operators or subqueries",
        ) from None


def _parse_single(sql: str) -> ast.SelectStmt:
    try:
        raw_statements = parse_sql(sql)
    except ParseError as exc:
        raise SqlRejected("parse_error", f"the statement does not parse: {exc}") from None
    if not raw_statements:
        raise SqlRejected("empty", "there is no SQL statement, only whitespace, comments or semicolons")
    if len(raw_statements) > 1:
        kinds = ", ".join(_statement_kind(raw.stmt) for raw in raw_statements)
        raise SqlRejected(
            "single_statement",
            f"exactly one statement is allowed, found {len(raw_statements)} ({kinds})",
        )
    stmt = raw_statements[0].stmt
    if not isinstance(stmt, ast.SelectStmt):
        raise SqlRejected("not_select", f"only a SELECT statement is allowed, found {_statement_kind(stmt)}")
    return stmt


_STATEMENT_KINDS = {
    "SelectStmt": "SELECT",
    "InsertStmt": "INSERT",
    "UpdateStmt": "UPDATE",
    "DeleteStmt": "DELETE",
    "MergeStmt": "MERGE",
    "TransactionStmt": "a transaction control statement",
    "VariableSetStmt": "SET",
    "VariableShowStmt": "SHOW",
    "CopyStmt": "COPY",
    "ExplainStmt": "EXPLAIN",
    "DoStmt": "DO",
    "CallStmt": "CALL",
    "LockStmt": "LOCK",
    "PrepareStmt": "PREPARE",
    "ExecuteStmt": "EXECUTE",
    "DeclareCursorStmt": "DECLARE CURSOR",
    "ListenStmt": "LISTEN",
    "NotifyStmt": "NOTIFY",
    "VacuumStmt": "VACUUM/ANALYZE",
    "GrantStmt": "GRANT/REVOKE",
    "AlterSystemStmt": "ALTER SYSTEM",
    "LoadStmt": "LOAD",
    "DropStmt": "DROP",
    "TruncateStmt": "TRUNCATE",
    "CreateStmt": "CREATE TABLE",
    "CreateTableAsStmt": "CREATE TABLE AS",
    "ViewStmt": "CREATE VIEW",
    "CreateFunctionStmt": "CREATE FUNCTION",
}


def _statement_kind(stmt: ast.Node | None) -> str:
    name = type(stmt).__name__
    return _STATEMENT_KINDS.get(name, name.removesuffix("Stmt"))


# Node kinds that carry no behaviour of their own: their children are still walked.
_PLAIN_NODES: frozenset[type[ast.Node]] = frozenset(
    {
        ast.A_ArrayExpr,
        ast.A_Const,
        ast.A_Indices,
        ast.A_Star,
        ast.Alias,
        ast.BitString,
        ast.Boolean,
        ast.BoolExpr,
        ast.BooleanTest,
        ast.CaseExpr,
        ast.CaseWhen,
        ast.CoalesceExpr,
        ast.ColumnDef,
        ast.CTECycleClause,
        ast.CTESearchClause,
        ast.Float,
        ast.GroupingFunc,
        ast.GroupingSet,
        ast.Integer,
        ast.JoinExpr,
        ast.MinMaxExpr,
        ast.NamedArgExpr,
        ast.NullTest,
        ast.RangeFunction,
        ast.RangeSubselect,
        ast.ResTarget,
        ast.RowExpr,
        ast.SQLValueFunction,
        ast.String,
        ast.TypeCast,
        ast.WindowDef,
    }
)

# Node kinds refused outright, with the rule and wording the LLM will read.
_REFUSED_NODES: dict[str, tuple[str, str]] = {
    "IntoClause": ("select_into", "SELECT ... INTO creates a table and is not allowed"),
    "LockingClause": ("locking_clause", "locking clauses (FOR UPDATE/SHARE) are not allowed"),
    "RangeTableSample": ("tablesample", "TABLESAMPLE is not allowed"),
    "RangeTableFunc": ("function_not_allowed", "XMLTABLE is not allowed"),
    "XmlExpr": ("function_not_allowed", "XML functions are not allowed"),
    "XmlSerialize": ("function_not_allowed", "XMLSERIALIZE is not allowed"),
    "ParamRef": ("unsupported_syntax", "query parameters ($1, ...) are not allowed; inline the values"),
    "SetToDefault": ("unsupported_syntax", "DEFAULT is not allowed in a query"),
}


# BETWEEN and friends carry a keyword such as "BETWEEN SYMMETRIC" in `name`, not an operator.
_BETWEEN_KINDS = frozenset(
    {
        A_Expr_Kind.AEXPR_BETWEEN,
        A_Expr_Kind.AEXPR_NOT_BETWEEN,
        A_Expr_Kind.AEXPR_BETWEEN_SYM,
        A_Expr_Kind.AEXPR_NOT_BETWEEN_SYM,
    }
)


def _unsupported_detail(node_kind: str) -> str:
    if node_kind.startswith("Json"):
        # PostgreSQL 16+ SQL/JSON syntax: not on every supported server, and the function forms
        # (json_build_object, jsonb_path_query, ...) say the same thing.
        return (
            f"SQL/JSON syntax ({node_kind}: JSON_OBJECT, JSON_ARRAY, IS JSON, JSON_TABLE, ...) is not "
            "supported; use the json/jsonb functions and operators instead"
        )
    return f"the construct {node_kind} is not supported"


class _Checker:
    """Walks one raw parse tree, refusing what is not allowed and qualifying names in place."""

    def __init__(self, policy: PostgresPolicy) -> None:
        self._policy = policy
        self._allowed_schemas = frozenset(schema for schema, _ in policy.allowed_tables)

    def check_statement(self, stmt: ast.SelectStmt) -> None:
        self._walk(stmt, frozenset())

    def _walk(self, node: Any, ctes: frozenset[str]) -> None:
        """`ctes`: the WITH names visible here, which shadow tables for unqualified names."""
        if node is None or isinstance(node, str | int | float | bool):
            return
        if isinstance(node, tuple | list):
            for item in node:
                self._walk(item, ctes)
            return
        handler = self._HANDLERS.get(type(node).__name__)
        if handler is not None:
            handler(self, node, ctes)
            return
        refused = _REFUSED_NODES.get(type(node).__name__)
        if refused is not None:
            raise SqlRejected(*refused)
        if type(node) not in _PLAIN_NODES:
            raise SqlRejected("unsupported_syntax", _unsupported_detail(type(node).__name__))
        self._walk_children(node, ctes)

    def _walk_children(self, node: ast.Node, ctes: frozenset[str], skip: tuple[str, ...] = ()) -> None:
        for attribute in node:
            if attribute not in skip:
                self._walk(getattr(node, attribute), ctes)

    # --- statements and scopes -------------------------------------------------------------

    def _select(self, node: ast.SelectStmt, ctes: frozenset[str]) -> None:
        if node.intoClause is not None:
            raise SqlRejected(*_REFUSED_NODES["IntoClause"])
        if node.lockingClause:
            raise SqlRejected(*_REFUSED_NODES["LockingClause"])
        if node.withClause is not None:
            ctes = self._with_clause(node.withClause, ctes)
        # Set-operation arms are SelectStmts too, walked with the scope of this WITH.
        self._walk_children(node, ctes, skip=("withClause",))

    def _with_clause(self, clause: ast.WithClause, outer: frozenset[str]) -> frozenset[str]:
        """Check every CTE body and return the scope the statement body sees.

        PostgreSQL's visibility rules matter here: in a plain WITH a CTE sees only the CTEs
        before it — a reference to its own name means a *table* of that name
        (`WITH pg_authid AS (SELECT * FROM pg_authid) ...` reads the catalogue) — while in
        WITH RECURSIVE every CTE of the list is visible in every body.
        """
        items = clause.ctes or ()
        names = [cte.ctename for cte in items]
        scope = outer
        for cte in items:
            if not isinstance(cte.ctequery, ast.SelectStmt):
                kind = _statement_kind(cte.ctequery)
                raise SqlRejected(
                    "data_modifying_cte",
                    f"the WITH query {cte.ctename} is {kind}; every WITH query must be a SELECT",
                )
            body_scope = outer | frozenset(names) if clause.recursive else scope
            self._walk_children(cte, body_scope)
            scope = scope | {cte.ctename}
        return outer | frozenset(names)

    def _stray_cte(self, node: ast.CommonTableExpr, ctes: frozenset[str]) -> None:
        # CTEs are only reached through _with_clause; one anywhere else is not a shape we know.
        raise SqlRejected("unsupported_syntax", "a WITH query outside a WITH clause is not supported")

    # --- names --------------------------------------------------------------------------

    def _range_var(self, node: ast.RangeVar, ctes: frozenset[str]) -> None:
        if node.catalogname is not None:
            name = f"{node.catalogname}.{node.schemaname}.{node.relname}"
            raise SqlRejected("relation_not_allowed", f"cross-database reference {name} is not allowed")
        if node.schemaname is None:
            if node.relname in ctes:
                return
            node.schemaname = self._resolve_unqualified(node.relname or "")
        elif (node.schemaname, node.relname) not in self._policy.allowed_tables:
            if node.schemaname not in self._allowed_schemas:
                raise SqlRejected(
                    "schema_not_allowed",
                    f"schema {node.schemaname} is not allowed (relation {node.schemaname}.{node.relname})",
                )
            raise SqlRejected(
                "relation_not_allowed",
                f"relation {node.schemaname}.{node.relname} is not one of this data source's tables",
            )
        self._walk(node.alias, ctes)

    def _resolve_unqualified(self, relname: str) -> str:
        for schema in self._policy.search_path:
            if (schema, relname) in self._policy.allowed_tables:
                return schema
        raise SqlRejected(
            "relation_not_allowed", f"relation {relname} is not one of this data source's tables"
        )

    def _column_ref(self, node: ast.ColumnRef, ctes: frozenset[str]) -> None:
        for name in _string_values(node.fields):
            if name in SYSTEM_COLUMNS:
                raise SqlRejected("system_column", f"system column {name} is not allowed")

    def _indirection(self, node: ast.A_Indirection, ctes: frozenset[str]) -> None:
        for name in _string_values(node.indirection):
            if name in SYSTEM_COLUMNS:
                raise SqlRejected("system_column", f"system column {name} is not allowed")
        self._walk_children(node, ctes)

    # --- functions, operators and types ---------------------------------------------------

    def _func_call(self, node: ast.FuncCall, ctes: frozenset[str]) -> None:
        name = _catalog_name(node.funcname)
        if name is None or name not in ALLOWED_FUNCTIONS:
            raise SqlRejected("function_not_allowed", f"function {_dotted(node.funcname)} is not allowed")
        node.funcname = (ast.String(sval=_CATALOG), ast.String(sval=name))
        self._walk_children(node, ctes, skip=("funcname",))

    def _a_expr(self, node: ast.A_Expr, ctes: frozenset[str]) -> None:
        if node.kind not in _BETWEEN_KINDS:
            self._check_operator(node.name)
        self._walk_children(node, ctes, skip=("name",))

    def _sub_link(self, node: ast.SubLink, ctes: frozenset[str]) -> None:
        if node.operName:
            self._check_operator(node.operName)
        self._walk_children(node, ctes, skip=("operName",))

    def _sort_by(self, node: ast.SortBy, ctes: frozenset[str]) -> None:
        if node.useOp:
            self._check_operator(node.useOp)
        self._walk_children(node, ctes, skip=("useOp",))

    def _check_operator(self, name: tuple[ast.String, ...] | None) -> None:
        symbol = _catalog_name(name)
        if symbol is None or symbol not in ALLOWED_OPERATORS:
            raise SqlRejected("operator_not_allowed", f"operator {_dotted(name)} is not allowed")

    def _type_name(self, node: ast.TypeName, ctes: frozenset[str]) -> None:
        name = _catalog_name(node.names)
        if name is None or name not in ALLOWED_TYPES or node.setof or node.pct_type:
            raise SqlRejected("cast_not_allowed", f"type {_dotted(node.names)} is not allowed")
        node.names = (ast.String(sval=_CATALOG), ast.String(sval=name))
        self._walk_children(node, ctes, skip=("names",))

    def _collate(self, node: ast.CollateClause, ctes: frozenset[str]) -> None:
        if _catalog_name(node.collname) is None:
            raise SqlRejected("collation_not_allowed", f"collation {_dotted(node.collname)} is not allowed")
        self._walk_children(node, ctes, skip=("collname",))

    _HANDLERS: dict[str, Any] = {
        "SelectStmt": _select,
        "CommonTableExpr": _stray_cte,
        "RangeVar": _range_var,
        "ColumnRef": _column_ref,
        "A_Indirection": _indirection,
        "FuncCall": _func_call,
        "A_Expr": _a_expr,
        "SubLink": _sub_link,
        "SortBy": _sort_by,
        "TypeName": _type_name,
        "CollateClause": _collate,
    }


def _string_values(nodes: Any) -> Iterator[str]:
    for item in nodes or ():
        if isinstance(item, ast.String):
            yield item.sval or ""


def _catalog_name(names: tuple[ast.String, ...] | None) -> str | None:
    """The bare name if `names` is unqualified or qualified with pg_catalog, else None."""
    parts = list(_string_values(names))
    if len(parts) != len(names or ()):
        return None
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2 and parts[0] == _CATALOG:
        return parts[1]
    return None


def _dotted(names: Any) -> str:
    return ".".join(_string_values(names)) or "?"
