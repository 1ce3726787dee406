#include "exec.hpp"

#include <memory>
#include <optional>

#include <libpq-fe.h>

#include "io_wait.hpp"
#include "libpq_support.hpp"

namespace pg_ingest::detail {

namespace {

// Back to blocking mode on every exit; a closed connection has no handle any more. Not
// copyable or movable: built in place, so that no temporary's destructor restores blocking
// mode before the statement is sent (which made PQsend* block with no deadline).
struct Restore {
    explicit Restore(Connection* c) : connection(c) {}
    Restore(const Restore&) = delete;
    Restore& operator=(const Restore&) = delete;
    Connection* connection;
    ~Restore() {
        if (auto* conn = static_cast<PGconn*>(connection->native_handle())) {
            PQsetnonblocking(conn, 0);
        }
    }
};

[[noreturn]] void lost(Connection& connection, PGconn* conn) {
    Error error = lost_connection_error(conn);
    connection.close();
    throw error;
}

// Sends with `send` (a PQsend* call), then waits for every result until `deadline`.
template <typename Send>
Result exec_sent(Connection& connection, Connection::Clock::time_point deadline, Send&& send) {
    auto* conn = static_cast<PGconn*>(connection.native_handle());
    if (conn == nullptr || PQstatus(conn) != CONNECTION_OK) {
        throw connection_error(k_connection_does_not_exist, "connection is closed");
    }
    if (PQsetnonblocking(conn, 1) != 0) {
        lost(connection, conn);
    }
    if (Connection::Clock::now() >= deadline) {
        connection.close();  // as if it had been sent: the caller sees one behaviour
        throw deadline_error("before a statement was sent");
    }
    std::optional<Restore> restore(std::in_place, &connection);
    if (send(conn) == 0) {
        if (PQstatus(conn) != CONNECTION_OK) {
            lost(connection, conn);
        }
        throw Error(trim_message(PQerrorMessage(conn)));
    }
    auto timed_out = [&](const char* what) {
        restore.reset();
        connection.cancel_and_close();
        return deadline_error(what);
    };
    while (true) {
        const int flushed = PQflush(conn);
        if (flushed == 0) {
            break;
        }
        if (flushed < 0) {
            lost(connection, conn);
        }
        const IoReady ready = wait_io(PQsocket(conn), true, deadline);
        if (ready == IoReady::timed_out) {
            throw timed_out("while sending a statement");
        }
        if (ready == IoReady::failed || (ready == IoReady::readable && PQconsumeInput(conn) == 0)) {
            lost(connection, conn);
        }
    }
    std::optional<Result> last;
    std::optional<Error> failure;
    while (true) {
        while (PQisBusy(conn) != 0) {
            const IoReady ready = wait_io(PQsocket(conn), false, deadline);
            if (ready == IoReady::timed_out) {
                throw timed_out("waiting for a statement's result");
            }
            if (ready == IoReady::failed || PQconsumeInput(conn) == 0) {
                if (failure) {
                    // The error came before the end of the session (a FATAL such as 57P01):
                    // thrown with the session's real state, which was open when it was read.
                    const Error error(failure->what(), failure->sqlstate(), failure->detail(),
                                      failure->hint(), false);
                    connection.close();
                    throw error;
                }
                lost(connection, conn);
            }
        }
        PGresult* result = PQgetResult(conn);
        if (result == nullptr) {
            break;
        }
        const ExecStatusType status = PQresultStatus(result);
        if (status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK ||
            status == PGRES_EMPTY_QUERY) {
            last = result_from_pg(result);
        } else if (status == PGRES_COPY_IN || status == PGRES_COPY_OUT ||
                   status == PGRES_COPY_BOTH) {
            PQclear(result);
            restore.reset();
            connection.cancel_and_close();
            throw Error("COPY cannot run through a statement with a deadline; connection closed",
                        "", "", "", false);
        } else if (!failure) {
            failure = error_from_result(result, conn);
        }
        PQclear(result);
    }
    if (failure) {
        if (!failure->connection_usable() || PQstatus(conn) != CONNECTION_OK) {
            connection.close();
            throw Error(failure->what(), failure->sqlstate(), failure->detail(), failure->hint(),
                        false);
        }
        throw *failure;
    }
    if (PQstatus(conn) != CONNECTION_OK) {
        lost(connection, conn);
    }
    return last ? std::move(*last) : Result();
}

}  // namespace

bool in_transaction(Connection& connection) noexcept {
    auto* conn = static_cast<PGconn*>(connection.native_handle());
    if (conn == nullptr) {
        return false;
    }
    const PGTransactionStatusType status = PQtransactionStatus(conn);
    return status == PQTRANS_INTRANS || status == PQTRANS_INERROR;
}

Result exec_until(Connection& connection, const std::string& sql, const BinaryParams* params,
                  Connection::Clock::time_point deadline) {
    return exec_sent(connection, deadline, [&](PGconn* conn) {
        if (params == nullptr) {
            return PQsendQuery(conn, sql.c_str());
        }
        std::vector<int> formats(params->size(), 1);
        return PQsendQueryParams(conn, sql.c_str(), static_cast<int>(params->size()),
                                 params->types.data(), params->values.data(),
                                 params->lengths.data(), formats.data(), 0);
    });
}

Result exec_text_until(Connection& connection, const std::string& sql,
                       const std::vector<const char*>& params,
                       Connection::Clock::time_point deadline) {
    return exec_sent(connection, deadline, [&](PGconn* conn) {
        return PQsendQueryParams(conn, sql.c_str(), static_cast<int>(params.size()), nullptr,
                                 params.data(), nullptr, nullptr, 0);
    });
}

}  // namespace pg_ingest::detail
