#include <pg_ingest/result.hpp>

#include <cstdlib>
#include <stdexcept>

#include "libpq_support.hpp"

namespace pg_ingest {

Result::Result(std::vector<std::string> column_names, std::vector<Value> values, std::size_t rows,
               std::uint64_t affected_rows, std::string command_tag)
    : m_column_names(std::move(column_names)),
      m_values(std::move(values)),
      m_rows(rows),
      m_affected_rows(affected_rows),
      m_command_tag(std::move(command_tag)) {
    if (m_values.size() != m_rows * m_column_names.size()) {
        throw std::invalid_argument("pg_ingest::Result: value count is not rows * columns");
    }
}

const std::string& Result::column_name(std::size_t column) const {
    if (column >= m_column_names.size()) {
        throw std::out_of_range("pg_ingest::Result: column index out of range");
    }
    return m_column_names[column];
}

const Result::Value& Result::get(std::size_t row, std::size_t column) const {
    if (row >= rows() || column >= columns()) {
        throw std::out_of_range("pg_ingest::Result: row or column index out of range");
    }
    return m_values[row * columns() + column];
}

namespace detail {

Result result_from_pg(PGresult* result) {
    const int columns = PQnfields(result);
    const int rows = PQntuples(result);
    std::vector<std::string> names;
    names.reserve(static_cast<std::size_t>(columns));
    for (int c = 0; c < columns; ++c) {
        names.emplace_back(PQfname(result, c));
    }
    std::vector<Result::Value> values;
    values.reserve(static_cast<std::size_t>(rows) * static_cast<std::size_t>(columns));
    for (int r = 0; r < rows; ++r) {
        for (int c = 0; c < columns; ++c) {
            if (PQgetisnull(result, r, c) != 0) {
                values.emplace_back(std::nullopt);
            } else {
                values.emplace_back(std::string(
                    PQgetvalue(result, r, c), static_cast<std::size_t>(PQgetlength(result, r, c))));
            }
        }
    }
    // PQcmdTuples is "" for commands without a count; strtoull then yields 0.
    const std::uint64_t affected = std::strtoull(PQcmdTuples(result), nullptr, 10);
    return Result(std::move(names), std::move(values), static_cast<std::size_t>(rows), affected,
                  PQcmdStatus(result));
}

}  // namespace detail

}  // namespace pg_ingest
