// pg_ingest::QualifiedName — a table (or other relation) name as users write it on command lines
// and in configuration: `orders`, `sales.orders`, `"Sales"."Order Lines"`.
#pragma once

#include <string>
#include <string_view>

#include <pg_ingest/export.hpp>

namespace pg_ingest {

// Value type, no I/O. Names are stored as the server sees them (after case folding), never
// quoted; quoted() produces SQL text that is safe to splice into a statement.
struct PG_INGEST_API QualifiedName {
    std::string schema;  // empty: resolved through the session's search_path
    std::string name;

    // Parses `name` or `schema.name` with SQL rules: a part in double quotes is taken literally
    // ("" is one quote, dots allowed), an unquoted part is folded to lower case unless
    // `case_sensitive` (the connectors' `casesensitive=1`), in which case it is taken as written.
    // Throws pg_ingest::Error (no SQLSTATE) for an empty part, more than two parts, an
    // unterminated quote or a NUL byte.
    static QualifiedName parse(std::string_view text, bool case_sensitive = false);

    // `"schema"."name"` or `"name"`; always quoted, so reserved words and mixed case are safe.
    std::string quoted() const;
};

// Double-quotes an identifier for SQL (embedded quotes doubled). Throws pg_ingest::Error for an
// empty identifier or a NUL byte. Pure: unlike Connection::quote_identifier it does not check
// the bytes against the session encoding (the server does that when the statement arrives).
PG_INGEST_API std::string quote_identifier(std::string_view identifier);

}  // namespace pg_ingest
