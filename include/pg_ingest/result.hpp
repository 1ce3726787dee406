// pg_ingest::Result — the outcome of one statement, copied out of libpq into plain C++ values.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <pg_ingest/export.hpp>

namespace pg_ingest {

// Rows are held as text (the server's text output format); SQL NULL is std::nullopt.
// A value type: it owns all its data and does not refer to the connection that produced it.
class PG_INGEST_API Result {
  public:
    using Value = std::optional<std::string>;

    Result() = default;
    // For the library: values are row-major, values.size() == rows * column_names.size()
    // (a SELECT may return rows without columns). Throws std::invalid_argument otherwise.
    Result(std::vector<std::string> column_names, std::vector<Value> values, std::size_t rows,
           std::uint64_t affected_rows, std::string command_tag);

    // Number of rows returned (0 for commands that return none).
    std::size_t rows() const noexcept { return m_rows; }
    // Number of columns returned.
    std::size_t columns() const noexcept { return m_column_names.size(); }
    // Column name; throws std::out_of_range.
    const std::string& column_name(std::size_t column) const;
    // The value at (row, column); throws std::out_of_range.
    const Value& get(std::size_t row, std::size_t column) const;
    // True when the value is SQL NULL; throws std::out_of_range.
    bool is_null(std::size_t row, std::size_t column) const { return !get(row, column); }
    // Rows inserted/updated/deleted/copied/selected as reported in the command tag, else 0.
    std::uint64_t affected_rows() const noexcept { return m_affected_rows; }
    // The command tag, e.g. "INSERT 0 3" or "SELECT 1"; empty for an empty query.
    const std::string& command_tag() const noexcept { return m_command_tag; }

  private:
    std::vector<std::string> m_column_names;
    std::vector<Value> m_values;
    std::size_t m_rows = 0;
    std::uint64_t m_affected_rows = 0;
    std::string m_command_tag;
};

}  // namespace pg_ingest
