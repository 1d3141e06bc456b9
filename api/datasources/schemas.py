"""What clients see of a data source: its name, dialect, description and schema — never its URL
(it carries credentials) and never the sample values (they may only ever reach the LLM)."""

from __future__ import annotations

from datetime import datetime

import msgspec

from shared.targets.config import DataSource
from shared.targets.introspect import SchemaSnapshot


class DataSourceRead(msgspec.Struct):
    name: str
    dialect: str
    description: str


class DataSourceList(msgspec.Struct):
    items: list[DataSourceRead]


class ColumnRead(msgspec.Struct):
    name: str
    type: str
    nullable: bool
    primary_key: bool
    comment: str | None


class ForeignKeyRead(msgspec.Struct):
    columns: list[str]
    ref_table: str
    ref_columns: list[str]


class TableRead(msgspec.Struct):
    schema: str
    name: str
    comment: str | None
    columns: list[ColumnRead]
    foreign_keys: list[ForeignKeyRead]


class SchemaRead(msgspec.Struct):
    data_source: str
    taken_at: datetime
    tables: list[TableRead]


def data_source_read(source: DataSource) -> DataSourceRead:
    return DataSourceRead(name=source.name, dialect=source.dialect, description=source.description)


def schema_read(snapshot: SchemaSnapshot) -> SchemaRead:
    # Field by field on purpose: a field added to the snapshot must not reach clients by accident.
    return SchemaRead(
        data_source=snapshot.data_source,
        taken_at=snapshot.taken_at,
        tables=[
            TableRead(
                schema=t.schema,
                name=t.name,
                comment=t.comment,
                columns=[
                    ColumnRead(
                        name=c.name,
                        type=c.type,
                        nullable=c.nullable,
                        primary_key=c.primary_key,
                        comment=c.comment,
                    )
                    for c in t.columns
                ],
                foreign_keys=[
                    ForeignKeyRead(
                        columns=list(fk.columns), ref_table=fk.ref_table, ref_columns=list(fk.ref_columns)
                    )
                    for fk in t.foreign_keys
                ],
            )
            for t in snapshot.tables
        ],
    )
