// Small SPI helpers for C++ code: every call goes through pg_call(), so a failing statement
// becomes a PgError with its SQLSTATE.
#pragma once

#include "boundary.hpp"

extern "C" {
#include "executor/spi.h"
}

#include <optional>
#include <string>
#include <vector>

namespace pg_ingest::spi {

struct Arg {
    Oid type;
    Datum value;
    bool null = false;
};

Arg int8_arg(int64_t v);
Arg oid_arg(Oid v);
Arg text_arg(const std::string& s);
Arg text_arg(const std::optional<std::string>& s);
Arg bool_arg(bool v);

// SPI_connect() .. SPI_finish() for the scope (SPI_finish does not ereport).
class Connection {
  public:
    Connection();
    ~Connection();
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;
};

// Runs one statement; returns SPI_processed. Results stay in SPI_tuptable until the next call.
uint64 exec(const std::string& sql, const std::vector<Arg>& args = {});

// Result accessors for row `row` of the last exec(); column numbers are 1-based.
bool is_null(uint64 row, int col);
int64_t get_int64(uint64 row, int col);
int32_t get_int32(uint64 row, int col);
Oid get_oid(uint64 row, int col);
bool get_bool(uint64 row, int col);
std::string get_text(uint64 row, int col);  // the column's text output ("" for NULL)
std::optional<std::string> get_opt_text(uint64 row, int col);

}  // namespace pg_ingest::spi
