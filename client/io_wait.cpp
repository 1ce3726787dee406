#include "io_wait.hpp"

#include <poll.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>

#include "libpq_support.hpp"

namespace pg_ingest::detail {

IoReady wait_io(int socket, bool want_write, Connection::Clock::time_point deadline) {
    if (socket < 0) {
        return IoReady::failed;
    }
    while (true) {
        int timeout_ms = -1;
        if (deadline != Connection::Clock::time_point::max()) {
            const auto now = Connection::Clock::now();
            if (now >= deadline) {
                return IoReady::timed_out;
            }
            const auto remaining =
                std::chrono::ceil<std::chrono::milliseconds>(deadline - now).count();
            timeout_ms = static_cast<int>(std::min<long long>(remaining, INT_MAX));
        }
        pollfd descriptor{socket, static_cast<short>(POLLIN | (want_write ? POLLOUT : 0)), 0};
        const int ready = ::poll(&descriptor, 1, timeout_ms);
        if (ready > 0) {
            // Prefer reporting readability: the server may be telling us about an error.
            if ((descriptor.revents & (POLLIN | POLLERR | POLLHUP)) != 0) {
                return IoReady::readable;
            }
            return IoReady::writable;
        }
        if (ready < 0 && errno != EINTR) {
            return IoReady::failed;
        }
    }
}

Error deadline_error(const std::string& what) {
    return Error("deadline passed " + what + "; the connection was closed", "08006", "", "", false);
}

Error lost_connection_error(const PGconn* conn) {
    std::string message = trim_message(conn != nullptr ? PQerrorMessage(conn) : nullptr);
    if (message.empty()) {
        message = "connection to the server was lost";
    }
    return Error(message, std::string(k_connection_failure), "", "", false);
}

Error drain_error(PGconn* conn, Connection::Clock::time_point deadline, bool& timed_out) {
    timed_out = false;
    std::optional<Error> first;
    while (true) {
        while (PQisBusy(conn) != 0) {
            const IoReady ready = wait_io(PQsocket(conn), false, deadline);
            if (ready == IoReady::timed_out) {
                timed_out = true;
                return first ? *first : deadline_error("waiting for the server's error");
            }
            if (ready == IoReady::failed || PQconsumeInput(conn) == 0) {
                return first ? *first : lost_connection_error(conn);
            }
        }
        PGresult* result = PQgetResult(conn);
        if (result == nullptr) {
            break;
        }
        const ExecStatusType status = PQresultStatus(result);
        if (!first && (status == PGRES_FATAL_ERROR || status == PGRES_NONFATAL_ERROR ||
                       status == PGRES_BAD_RESPONSE)) {
            first = error_from_result(result, conn);
        }
        PQclear(result);
        if (status == PGRES_COPY_IN || status == PGRES_COPY_OUT || status == PGRES_COPY_BOTH) {
            break;  // cannot drain a stream here; the caller closes the connection
        }
    }
    if (first) {
        return *first;
    }
    return lost_connection_error(conn);
}

bool parse_copy_line(const char* context, unsigned long long& line) {
    if (context == nullptr) {
        return false;
    }
    const char* found = std::strstr(context, ", line ");
    if (found == nullptr) {
        return false;
    }
    char* end = nullptr;
    const unsigned long long value = std::strtoull(found + 7, &end, 10);
    if (end == found + 7) {
        return false;
    }
    line = value;
    return true;
}

}  // namespace pg_ingest::detail
