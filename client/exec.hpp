// Internal: statements with binary parameters and a deadline, for the writer.
#pragma once

#include <algorithm>
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
// The same with text parameters (nullptr is NULL; types inferred by the server).
Result exec_text_until(Connection& connection, const std::string& sql,
                       const std::vector<const char*>& params,
                       Connection::Clock::time_point deadline);

// `grace` past `deadline`, or past now if that is later (a deadline already passed still gets
// its one statement); time_point::max() stays unbounded.
inline Connection::Clock::time_point grace_after(Connection::Clock::time_point deadline,
                                                 Connection::Clock::duration grace) {
    const auto from = std::max(deadline, Connection::Clock::now());
    return from >= Connection::Clock::time_point::max() - grace
               ? Connection::Clock::time_point::max()
               : from + grace;
}

// Sets a connection's deadline (Connection::set_deadline) for a scope, then restores the one
// it had. It holds the Connection object: a session moved into that object meanwhile runs
// without the bound and gets the old deadline at the end, so do not replace it in the scope.
class DeadlineScope {
  public:
    DeadlineScope(Connection& connection, Connection::Clock::time_point deadline) noexcept
        : m_connection(connection), m_previous(connection.deadline()) {
        connection.set_deadline(deadline);
    }
    ~DeadlineScope() { m_connection.set_deadline(m_previous); }
    DeadlineScope(const DeadlineScope&) = delete;
    DeadlineScope& operator=(const DeadlineScope&) = delete;

  private:
    Connection& m_connection;
    Connection::Clock::time_point m_previous;
};

}  // namespace pg_ingest::detail
