// Internal: statements with binary parameters and a deadline, for the writer.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <pg_ingest/connection.hpp>
#include <pg_ingest/result.hpp>

namespace pg_ingest::detail {

// Parameters in binary format; a nullptr value is NULL. The pointed-to bytes must outlive the
// call.
struct BinaryParams {
    std::vector<std::uint32_t> types;
    std::vector<const char*> values;
    std::vector<int> lengths;

    void add(std::uint32_t type, const char* value, int length) {
        types.push_back(type);
        values.push_back(value);
        lengths.push_back(length);
    }
    std::size_t size() const { return values.size(); }
};

// True while the session is inside a transaction block (open or failed): a ROLLBACK then has
// something to end. After a failed COMMIT the transaction is already over.
bool in_transaction(Connection& connection) noexcept;

// Runs one statement (simple protocol when params is null, else extended with binary
// parameters), waiting at most until `deadline`; then the connection is closed and a retryable
// Error 08006 is thrown. Server errors throw Error with SQLSTATE. The connection is left in
// blocking mode.
Result exec_until(Connection& connection, const std::string& sql, const BinaryParams* params,
                  Connection::Clock::time_point deadline);

}  // namespace pg_ingest::detail
