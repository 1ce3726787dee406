// pg_ingest::TableSchema — a target table as read from the catalog.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <pg_ingest/connection.hpp>
#include <pg_ingest/export.hpp>
#include <pg_ingest/value.hpp>

namespace pg_ingest {

struct PG_INGEST_API ColumnInfo {
    std::string name;  // as stored in the catalog (exact case)
    int number = 0;    // attnum
    std::uint32_t type_oid = 0;
    std::string type_name;  // format_type(), e.g. "character varying(20)"
    std::int32_t typmod = -1;
    bool not_null = false;  // the column's NOT NULL, or its domain's
    bool has_default = false;
    bool generated = false;  // GENERATED ALWAYS AS (...) STORED: cannot be written
    bool identity_always = false;
    // The encoder's view of the type (domains resolved to their base type); nullopt when the
    // type cannot be written by the client (reported when a writer selects the column).
    std::optional<ColumnType> type;
};

// A value type holding a snapshot of the catalog; it does not refer to the connection.
class PG_INGEST_API TableSchema {
  public:
    // Reads table `table` (a plain or partitioned table) in `schema`. `table` may be written
    // schema.table (split at the first dot), which overrides `schema`. With double quotes it is
    // read as SQL names are: a quoted part ("ev.log", "Sales"."Orders", sales."Order Lines";
    // "" is a quote inside one) is exact, dots and case included, and is never split. Unless
    // `case_sensitive`, unquoted names are
    // matched ignoring case; an exact-case match wins over others, and two case-insensitive
    // matches without an exact one are an error. Blocks on catalog queries (bounded by the
    // connection's deadline, Connection::set_deadline). Throws pg_ingest::Error 42P01 (no such
    // table), 42P09 (ambiguous), 42602 (a malformed quoted or empty name), or a server /
    // connection Error.
    static TableSchema load(Connection& connection, std::string_view table,
                            std::string_view schema = "public", bool case_sensitive = false);

    const std::string& schema_name() const noexcept { return m_schema; }
    const std::string& table_name() const noexcept { return m_table; }
    std::uint32_t oid() const noexcept { return m_oid; }
    const std::vector<ColumnInfo>& columns() const noexcept { return m_columns; }
    // Primary key column names in key order; empty when there is none.
    const std::vector<std::string>& primary_key() const noexcept { return m_primary_key; }
    // Every valid, non-partial, expression-free unique index (the primary key included).
    const std::vector<std::vector<std::string>>& unique_keys() const noexcept {
        return m_unique_keys;
    }

    // Index of a column by name (case-insensitive unless case_sensitive; exact case wins);
    // nullopt when absent. Throws Error 42702 when ambiguous.
    std::optional<std::size_t> find_column(std::string_view name, bool case_sensitive) const;

    // "schema"."table", quoted for the connection.
    std::string qualified_name(const Connection& connection) const;

  private:
    std::string m_schema;
    std::string m_table;
    std::uint32_t m_oid = 0;
    std::vector<ColumnInfo> m_columns;
    std::vector<std::string> m_primary_key;
    std::vector<std::vector<std::string>> m_unique_keys;
};

}  // namespace pg_ingest
