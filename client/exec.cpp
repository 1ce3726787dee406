#include "exec.hpp"

#include <memory>
#include <optional>

#include <libpq-fe.h>

#include "io_wait.hpp"
#include "libpq_support.hpp"

namespace pg_ingest::detail {

namespace {

// Back to blocking mode on every exit; a closed connection has no handle any more.
struct Restore {
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
    auto* conn = static_cast<PGconn*>(connection.native_handle());
    if (conn == nullptr || PQstatus(conn) != CONNECTION_OK) {
        throw connection_error(k_connection_does_not_exist, "connection is closed");
    }
    if (PQsetnonblocking(conn, 1) != 0) {
        lost(connection, conn);
    }
    std::optional<Restore> restore(Restore{&connection});
    int sent = 0;
    if (params == nullptr) {
        sent = PQsendQuery(conn, sql.c_str());
    } else {
        std::vector<int> formats(params->size(), 1);
        sent = PQsendQueryParams(conn, sql.c_str(), static_cast<int>(params->size()),
                                 params->types.data(), params->values.data(),
                                 params->lengths.data(), formats.data(), 0);
    }
    if (sent == 0) {
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
                    throw *failure;
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
            throw Error("unexpected COPY in a writer statement; connection closed", "", "", "",
                        false);
        } else if (!failure) {
            failure = error_from_result(result, conn);
        }
        PQclear(result);
    }
    if (failure) {
        if (!failure->connection_usable()) {
            connection.close();
        }
        throw *failure;
    }
    if (PQstatus(conn) != CONNECTION_OK) {
        lost(connection, conn);
    }
    return last ? std::move(*last) : Result();
}

}  // namespace pg_ingest::detail
