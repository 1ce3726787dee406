#include "notification.hpp"

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>

#include <libpq-fe.h>

#include "libpq_support.hpp"

namespace pg_ingest::detail {

namespace {

void drain(PGconn* conn, std::vector<Notification>& out) {
    while (PGnotify* notify = PQnotifies(conn)) {
        out.push_back({notify->relname != nullptr ? notify->relname : "",
                       notify->extra != nullptr ? notify->extra : "", notify->be_pid});
        PQfreemem(notify);
    }
}

}  // namespace

void drop_notifications(Connection& connection) noexcept {
    auto* conn = static_cast<PGconn*>(connection.native_handle());
    if (conn == nullptr) {
        return;
    }
    while (PGnotify* notify = PQnotifies(conn)) {
        PQfreemem(notify);
    }
}

std::vector<Notification> wait_for_notifications(Connection& connection,
                                                 Connection::Clock::time_point until) {
    auto* conn = static_cast<PGconn*>(connection.native_handle());
    if (conn == nullptr || PQstatus(conn) != CONNECTION_OK) {
        throw connection_error(k_connection_does_not_exist, "connection is closed");
    }
    std::vector<Notification> received;
    drain(conn, received);
    while (received.empty()) {
        const auto now = Connection::Clock::now();
        if (now >= until) {
            break;
        }
        const auto remaining = std::chrono::ceil<std::chrono::milliseconds>(until - now).count();
        pollfd descriptor{PQsocket(conn), POLLIN, 0};
        const int ready =
            ::poll(&descriptor, 1, static_cast<int>(std::min<long long>(remaining, INT_MAX)));
        if (ready < 0) {
            if (errno == EINTR) {
                continue;
            }
            // poll() itself failed (the session is untouched): a system error, transient only
            // when the kernel was out of memory.
            const int error = errno;
            throw Error(std::string("could not wait for notifications: ") + std::strerror(error),
                        error == ENOMEM ? "53200" : "58000", "", "", true);
        }
        if (ready > 0) {
            if (PQconsumeInput(conn) == 0) {
                throw connection_error(k_connection_failure,
                                       "connection lost while waiting for notifications: " +
                                           trim_message(PQerrorMessage(conn)));
            }
            drain(conn, received);
        }
    }
    return received;
}

}  // namespace pg_ingest::detail
